import { Box, render, Text } from 'ink';
import { formatBytes } from '../../lib/units.js';
import { pushLocal, type PushItem, type PushOptions, type PushResult } from '../push-local.js';

const BAR = 30;

function Row({ item, repo }: { item: PushItem; repo: string }) {
  const frac = item.size === 0 ? (item.state === 'done' ? 1 : 0) : Math.min(1, item.sent / item.size);
  const filled = Math.round(frac * BAR);
  const color = item.state === 'failed' ? 'red' : item.state === 'done' ? 'green' : undefined;
  return (
    <Box flexDirection="column">
      <Text>
        <Text color={color}>{item.state === 'done' ? '✔' : item.state === 'failed' ? '✘' : item.state === 'sending' ? '↑' : ' '}</Text>{' '}
        {repo}/{item.path}
      </Text>
      <Text>
        {'  '}
        <Text color={color ?? 'cyan'}>{'█'.repeat(filled)}</Text>
        <Text dimColor>{'░'.repeat(BAR - filled)}</Text> {String(Math.floor(frac * 100)).padStart(3)}% {formatBytes(item.sent)} / {formatBytes(item.size)}
      </Text>
      {item.sha256 ? <Text>{'  '}sha256 {item.sha256}</Text> : null}
      {item.state === 'sending' && item.sent >= item.size ? <Text dimColor>{'  '}sent; waiting for the server to store it</Text> : null}
    </Box>
  );
}

export function PushView({ items, repo }: { items: PushItem[]; repo: string }) {
  return (
    <Box flexDirection="column">
      {items.map((item, i) => (
        <Row key={i} item={item} repo={repo} />
      ))}
    </Box>
  );
}

/** push-local on a TTY: an ink progress bar per file, redrawn at most every 100 ms. */
export async function pushWithProgress(o: Omit<PushOptions, 'onUpdate' | 'onDone'>): Promise<PushResult[]> {
  let items: PushItem[] = [];
  const snapshot = () => items.map((it) => ({ ...it }));
  const app = render(<PushView items={[]} repo={o.repo} />, { exitOnCtrlC: true, patchConsole: false });
  let last = 0;
  let pending: NodeJS.Timeout | undefined;
  const draw = () => {
    pending = undefined;
    last = Date.now();
    app.rerender(<PushView items={snapshot()} repo={o.repo} />);
  };
  const update = (next: PushItem[]) => {
    items = next;
    const settled = next.some((it) => it.state === 'done' || it.state === 'failed') && next.every((it) => it.state !== 'sending');
    if (settled || Date.now() - last >= 100) {
      if (pending) clearTimeout(pending);
      draw();
    } else if (!pending) {
      pending = setTimeout(draw, 100 - (Date.now() - last));
    }
  };
  try {
    return await pushLocal({ ...o, onUpdate: update });
  } finally {
    if (pending) clearTimeout(pending);
    draw();
    app.unmount();
    await app.waitUntilExit().catch(() => undefined);
  }
}
