// The peer of the mint benchmark: node oidc-provider (OpenID-certified) issuing RS256 JWT access
// tokens through the client_credentials grant, over HTTPS, one worker per core (node is single
// threaded, so a cluster is the fair comparison with a multi-threaded server).
import cluster from 'node:cluster';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';

// PORT=0 (the default) picks a free port; cluster workers listening on 0 all share the same one.
const port = Number(process.env.PORT || 0);
const workers = Number(process.env.WORKERS || os.availableParallelism());
const keyFile = process.env.JWK_FILE || '/tmp/keyward-bench-oidc-provider-jwk.json';

if (cluster.isPrimary) {
  // One signing key shared by all workers.
  if (!existsSync(keyFile)) {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(keyFile, JSON.stringify({ ...privateKey.export({ format: 'jwk' }), kid: 'bench', alg: 'RS256', use: 'sig' }));
  }
  for (let i = 0; i < workers; i += 1) cluster.fork();
  let ready = 0;
  cluster.on('message', (_, msg) => {
    // bench/mint.sh waits for this line and reads the URL from it.
    if (msg?.ready && ++ready === workers) console.log(`oidc-provider ready on https://127.0.0.1:${msg.port} (${workers} workers)`);
  });
  cluster.on('exit', (worker, code) => {
    if (code !== 0) { console.error(`oidc-provider worker ${worker.process.pid} exited with ${code}`); process.exit(1); }
  });
} else {
  const { default: Provider } = await import('oidc-provider');
  const jwk = JSON.parse(readFileSync(keyFile, 'utf8'));
  // Resource indicators must be absolute URIs; the token's aud is set below, as Keyward's is.
  const resource = 'https://bench.keyward.test/api';
  const audience = 'sts.amazonaws.com';
  const server = https.createServer({ key: readFileSync(process.env.TLS_KEY), cert: readFileSync(process.env.TLS_CERT) });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actualPort = server.address().port;
  const provider = new Provider(`https://127.0.0.1:${actualPort}`, {
    clients: [{
      client_id: 'bench',
      client_secret: 'bench-secret-bench-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    }],
    jwks: { keys: [jwk] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'api',
          audience,
          accessTokenTTL: 3600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
  });
  provider.proxy = true;
  server.on('request', provider.callback());
  process.send({ ready: true, port: actualPort });
}
