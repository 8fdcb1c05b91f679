#!/usr/bin/env node
// A real OpenID Provider (node `oidc-provider`, OpenID-certified) laid out like Keycloak, for
// Keyward's SSO end-to-end tests: the issuer is https://<host>/realms/<realm> and the endpoints sit
// at Keycloak's paths (/protocol/openid-connect/auth|token|certs|userinfo|logout, the device
// endpoint /protocol/openid-connect/auth/device). Keyward is configured with AUTH_PROVIDER=keycloak
// and the KEYCLOAK_* variables pointing here, as it would be for a real Keycloak.
//
// Everything that decides the tests' outcome is oidc-provider's own code: PKCE (required, S256),
// single-use codes, the nonce it copies into the ID token, token signing, the device flow. The
// sign-in and consent pages are oidc-provider's development interactions (any password); the tests
// post those forms as a person's browser would.
//
// Settings (environment):
//   IDP_TLS_CERT, IDP_TLS_KEY   PEM files of the HTTPS certificate (Keyward is told to trust its CA)
//   IDP_HOST                    default 127.0.0.1;  IDP_PORT default 0 (any free port)
//   IDP_REALM                   default "acme"
//   IDP_CLIENT_ID, IDP_CLIENT_SECRET   the confidential web client (browser sign-in)
//   IDP_REDIRECT_URI            its redirect URI: https://<keyward>/auth/keycloak/callback
//   IDP_POST_LOGOUT_URI         where the end-session endpoint may send people back to
//   IDP_DEVICE_CLIENT_ID        the public client of the device flow (CLI login)
//   IDP_AUDIENCE                the `aud` of access tokens (Keycloak's default is "account")
//   IDP_ACCOUNTS_FILE           optional JSON file, read at every token: per login, claims that
//                               replace the defaults below, e.g.
//                               {"mallory": {"email": "owner@acme.example", "email_verified": false,
//                                            "roles": ["member"]}}
//                               (a key set to null drops the claim). Tests rewrite it between
//                               sign-ins to change what the IdP says about someone.
// Prints one line of JSON once listening: {"issuer": "...", "port": N}.
//
// People (the login typed into the sign-in form) and their realm roles, which appear where
// Keycloak puts them: `realm_access.roles` in the access token.
//   alice@acme.example  member
//   root@acme.example   factory-admin
//   anyone else         no role (not assigned to the application)
// By default the login is also the `sub` and the `email`, with email_verified true.

import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';

import Provider, { errors } from 'oidc-provider';

const env = (name, fallback) => {
  const value = process.env[name];
  if (value === undefined || value === '') {
    if (fallback === undefined) {
      process.stderr.write(`idp.js: ${name} is required\n`);
      process.exit(2);
    }
    return fallback;
  }
  return value;
};

const REALM = env('IDP_REALM', 'acme');
const HOST = env('IDP_HOST', '127.0.0.1');
const AUDIENCE = env('IDP_AUDIENCE', 'account');
// The resource indicator oidc-provider issues JWT access tokens for; `aud` is AUDIENCE.
const API_RESOURCE = 'urn:keyward:api';
const ROLES = {
  'alice@acme.example': ['member'],
  'root@acme.example': ['factory-admin'],
};

// The per-login overrides of IDP_ACCOUNTS_FILE (read each time: tests change it mid-run).
const overrides = (id) => {
  const file = process.env.IDP_ACCOUNTS_FILE;
  if (!file || !fs.existsSync(file)) return {};
  return JSON.parse(fs.readFileSync(file, 'utf8'))[id] ?? {};
};
const profile = (id) => {
  const { roles, ...claims } = { email: id, email_verified: true, ...overrides(id) };
  for (const [k, v] of Object.entries(claims)) if (v === null) delete claims[k];
  return { claims, roles: roles ?? ROLES[id] ?? [] };
};

const tls = { cert: fs.readFileSync(env('IDP_TLS_CERT')), key: fs.readFileSync(env('IDP_TLS_KEY')) };
const signingKey = {
  ...crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  kid: `idp-${crypto.randomUUID()}`,
  use: 'sig',
  alg: 'RS256',
};

const prefix = `/realms/${REALM}`;
let handler = null;
const server = https.createServer(tls, (req, res) => {
  // Mounted under /realms/<realm>, as Keycloak serves a realm (what express's app.use does).
  if (handler && (req.url === prefix || req.url.startsWith(`${prefix}/`) || req.url.startsWith(`${prefix}?`))) {
    req.originalUrl = req.url;
    req.url = req.url.slice(prefix.length) || '/';
    handler(req, res);
    return;
  }
  res.statusCode = 404;
  res.end('not found\n');
});

server.listen(Number(env('IDP_PORT', '0')), HOST, () => {
  const { port } = server.address();
  const issuer = `https://${HOST}:${port}${prefix}`;
  const oidc = '/protocol/openid-connect';
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: env('IDP_CLIENT_ID'),
        client_secret: env('IDP_CLIENT_SECRET'),
        redirect_uris: [env('IDP_REDIRECT_URI')],
        post_logout_redirect_uris: [env('IDP_POST_LOGOUT_URI')],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: env('IDP_DEVICE_CLIENT_ID'),
        token_endpoint_auth_method: 'none',
        grant_types: ['urn:ietf:params:oauth:grant-type:device_code'],
        response_types: [],
        redirect_uris: [],
      },
    ],
    jwks: { keys: [signingKey] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    // PKCE on every authorization request, confidential client or not.
    pkce: { required: () => true },
    // Profile and email claims in the ID token itself, as Keycloak sends them.
    conformIdTokenClaims: false,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
    },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, name: id, preferred_username: id, ...profile(id).claims };
        },
      };
    },
    // Keycloak puts realm roles (and the email) into its access tokens.
    async extraTokenClaims(ctx, token) {
      if (token.kind !== 'AccessToken') return undefined;
      const { claims, roles } = profile(token.accountId);
      return { realm_access: { roles }, email: claims.email, email_verified: claims.email_verified };
    },
    features: {
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => API_RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo(ctx, resource) {
          if (resource !== API_RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: 'openid email profile',
            audience: AUDIENCE,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 600,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    routes: {
      authorization: `${oidc}/auth`,
      device_authorization: `${oidc}/auth/device`,
      code_verification: '/device',
      token: `${oidc}/token`,
      jwks: `${oidc}/certs`,
      userinfo: `${oidc}/userinfo`,
      end_session: `${oidc}/logout`,
      introspection: `${oidc}/token/introspect`,
      revocation: `${oidc}/revoke`,
    },
  });
  provider.on('server_error', (ctx, err) => process.stderr.write(`idp.js server_error: ${err.stack}\n`));
  handler = provider.callback();
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});
