import type { FastifyInstance } from 'fastify';
import { METRICS_TYPE } from '../../metrics/metrics.js';
import type { Services } from '../../repos/services.js';
import { runWithHooks, type Operation } from '../pipeline.js';

/** `GET /metrics`, Prometheus text. An admin operation unless `metrics.public` (then a read of no repo). */
export async function metricsApi(app: FastifyInstance, svc: Services): Promise<void> {
  app.get('/metrics', async (req, reply) => {
    const op: Operation = { format: 'api', action: svc.config.metrics.public ? 'read' : 'admin', touches: [], subject: 'metrics' };
    const call = { req, reply, svc };
    return runWithHooks(op, call, async () => reply.header('content-type', METRICS_TYPE).send(await svc.metrics.text()));
  });
}
