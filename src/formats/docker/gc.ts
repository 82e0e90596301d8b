import type { GcContext } from '../types.js';

export async function dockerGc(_ctx: GcContext): Promise<void> {}
