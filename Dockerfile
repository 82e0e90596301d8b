# syntax=docker/dockerfile:1
# artifactapi: multi-stage build on Node 20 LTS (bookworm-slim).
#   docker build -t artifactapi .
#   docker run -p 8000:8000 -v artifactapi-data:/data artifactapi
# Configuration: ARTIFACTAPI_* environment variables (see artifactapi.example.toml),
# or a config file at /data/artifactapi.toml (or ARTIFACTAPI_CONFIG).

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: compile TypeScript, then keep production dependencies only ----
FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Toolchain for better-sqlite3 when no prebuilt binary matches the platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# Install without lifecycle scripts (`prepare` would compile before src/ is here),
# then run only the native build better-sqlite3 needs.
RUN npm ci --ignore-scripts --no-audit --no-fund && npm rebuild better-sqlite3
COPY tsconfig.json ./
COPY src ./src
COPY bin ./bin
# After pruning, keep only better-sqlite3's compiled addon (build/Release/better_sqlite3.node, where a
# prebuilt binary lands too): its SQLite sources and object files are ~25 MB the runtime never reads.
RUN npx tsc -p tsconfig.json \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force \
 && cd node_modules/better-sqlite3 \
 && mv build/Release/better_sqlite3.node /tmp/ \
 && rm -rf build deps src \
 && mkdir -p build/Release \
 && mv /tmp/better_sqlite3.node build/Release/

# ---- runtime ----
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    ARTIFACTAPI_DATA_DIR=/data \
    ARTIFACTAPI_HOST=0.0.0.0 \
    ARTIFACTAPI_PORT=8000
WORKDIR /app
COPY --from=build --chown=root:root /src/package.json ./package.json
COPY --from=build --chown=root:root /src/node_modules ./node_modules
COPY --from=build --chown=root:root /src/dist ./dist
COPY --from=build --chown=root:root /src/bin ./bin
RUN chmod 0755 /app/bin/artifactapi \
 && ln -s /app/bin/artifactapi /usr/local/bin/artifactapi \
 && mkdir -p /data \
 && chown node:node /data
# The image's unprivileged `node` user (uid 1000) owns only the data volume.
USER node
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.ARTIFACTAPI_PORT || 8000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["artifactapi", "serve"]
