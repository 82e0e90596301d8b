import type { FastifyInstance } from 'fastify';
import type { Services } from '../../repos/services.js';

const PROBE = 'sha256:0000000000000000000000000000000000000000000000000000000000000000' as const;

export async function healthApi(app: FastifyInstance, svc: Services): Promise<void> {
  app.get('/health', async (req, reply) => {
    try {
      await svc.meta.ping();
      await svc.blob.stat(PROBE);
      await svc.coord.ping?.();
      return { status: 'ok' };
    } catch (err) {
      req.log.error({ err }, 'health check failed');
      return reply.code(503).send({ status: 'unavailable' });
    }
  });
}
