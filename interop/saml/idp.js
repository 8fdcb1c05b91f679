#!/usr/bin/env node
// A real SAML 2.0 identity provider (samlify, which signs with xml-crypto) for the keyward-saml
// tests. The Rust tests hand it one JSON job on stdin and read one JSON answer on stdout, so every
// signature the tests check was made by a third-party implementation, not by our own code.
//
// Job fields:
//   keyPem, certPem          the IdP signing key and certificate (PEM)
//   idpEntityId              Issuer
//   spEntityId, acsUrl       the SP as the IdP knows it (used to parse the AuthnRequest)
//   samlRequest, relayState  optional: an HTTP-Redirect AuthnRequest from keyward-saml; the IdP
//                            parses it and answers it (its ID becomes InResponseTo)
//   inResponseTo             used when there is no samlRequest (or to override it: "wrong" cases)
//   audience, recipient,     default spEntityId / the ACS URL of the request
//   destination
//   nowMs, lifetimeSecs      the IdP's clock and the assertion lifetime (expired cases)
//   sign                     "assertion" (default), "response" or "both"
//   style                    "generic" (samlify's prefixed template) or "entra" (Entra ID's layout
//                            with default namespaces and its claim names)
//   nameId, sessionIndex, attributes: [{name, values: [...]}]
// Answer: {"samlResponse": base64, "request": {"id", "acsUrl", "issuer"} | null,
//          "metadata": the IdP's metadata XML}
'use strict';

const saml = require('samlify');

// samlify insists on a schema validator before it parses anything. Schema validation of our
// AuthnRequest is not what these tests are about (the IdP's own parser still has to accept it), so
// a validator that accepts is enough here.
saml.setSchemaValidator({ validate: () => Promise.resolve('skipped') });

const PROTOCOL = 'urn:oasis:names:tc:SAML:2.0:protocol';
const ASSERTION = 'urn:oasis:names:tc:SAML:2.0:assertion';

function esc(s) {
  return String(s)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

function attributeStatement(style, attributes) {
  if (!attributes || attributes.length === 0) return '';
  const p = style === 'entra' ? '' : 'saml:';
  const attrs = attributes
    .map((a) => {
      const values = a.values
        .map((v) => `<${p}AttributeValue>${esc(v)}</${p}AttributeValue>`)
        .join('');
      return `<${p}Attribute Name="${esc(a.name)}">${values}</${p}Attribute>`;
    })
    .join('');
  return `<${p}AttributeStatement>${attrs}</${p}AttributeStatement>`;
}

function authnStatement(style, instant, sessionIndex) {
  const p = style === 'entra' ? '' : 'saml:';
  return (
    `<${p}AuthnStatement AuthnInstant="${instant}" SessionIndex="${esc(sessionIndex)}">` +
    `<${p}AuthnContext><${p}AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</${p}AuthnContextClassRef></${p}AuthnContext>` +
    `</${p}AuthnStatement>`
  );
}

// Entra ID's layout: protocol elements prefixed, assertion elements in a default namespace, as in
// the responses Entra sends (see Microsoft's "Single sign-on SAML protocol" page).
function entraTemplate(v) {
  return (
    `<samlp:Response ID="${v.ID}" Version="2.0" IssueInstant="${v.IssueInstant}" Destination="${esc(v.Destination)}" InResponseTo="${esc(v.InResponseTo)}" xmlns:samlp="${PROTOCOL}">` +
    `<Issuer xmlns="${ASSERTION}">${esc(v.Issuer)}</Issuer>` +
    `<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
    `<Assertion ID="${v.AssertionID}" IssueInstant="${v.IssueInstant}" Version="2.0" xmlns="${ASSERTION}">` +
    `<Issuer>${esc(v.Issuer)}</Issuer>` +
    `<Subject><NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">${esc(v.NameID)}</NameID>` +
    `<SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><SubjectConfirmationData InResponseTo="${esc(v.InResponseTo)}" NotOnOrAfter="${v.NotOnOrAfter}" Recipient="${esc(v.Recipient)}"/></SubjectConfirmation></Subject>` +
    `<Conditions NotBefore="${v.NotBefore}" NotOnOrAfter="${v.NotOnOrAfter}"><AudienceRestriction><Audience>${esc(v.Audience)}</Audience></AudienceRestriction></Conditions>` +
    `${v.AttributeStatement}${v.AuthnStatement}` +
    `</Assertion></samlp:Response>`
  );
}

// samlify's own default template, filled with our values.
function genericTemplate(v) {
  return (
    `<samlp:Response xmlns:samlp="${PROTOCOL}" xmlns:saml="${ASSERTION}" ID="${v.ID}" Version="2.0" IssueInstant="${v.IssueInstant}" Destination="${esc(v.Destination)}" InResponseTo="${esc(v.InResponseTo)}">` +
    `<saml:Issuer>${esc(v.Issuer)}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
    `<saml:Assertion xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:saml="${ASSERTION}" ID="${v.AssertionID}" Version="2.0" IssueInstant="${v.IssueInstant}">` +
    `<saml:Issuer>${esc(v.Issuer)}</saml:Issuer>` +
    `<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">${esc(v.NameID)}</saml:NameID>` +
    `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="${v.NotOnOrAfter}" Recipient="${esc(v.Recipient)}" InResponseTo="${esc(v.InResponseTo)}"/></saml:SubjectConfirmation></saml:Subject>` +
    `<saml:Conditions NotBefore="${v.NotBefore}" NotOnOrAfter="${v.NotOnOrAfter}"><saml:AudienceRestriction><saml:Audience>${esc(v.Audience)}</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
    `${v.AuthnStatement}${v.AttributeStatement}` +
    `</saml:Assertion></samlp:Response>`
  );
}

async function main() {
  const job = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  const sign = job.sign || 'assertion';
  const style = job.style || 'generic';

  const idp = saml.IdentityProvider({
    entityID: job.idpEntityId,
    privateKey: job.keyPem,
    signingCert: job.certPem,
    wantAuthnRequestsSigned: false,
    singleSignOnService: [
      { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', Location: 'https://idp.test/sso' },
    ],
  });
  const sp = saml.ServiceProvider({
    entityID: job.spEntityId,
    wantAssertionsSigned: sign === 'assertion' || sign === 'both',
    wantMessageSigned: sign === 'response' || sign === 'both',
    assertionConsumerService: [
      { Binding: 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST', Location: job.acsUrl },
    ],
  });

  let request = null;
  if (job.samlRequest) {
    const query = { SAMLRequest: job.samlRequest };
    if (job.relayState) query.RelayState = job.relayState;
    const parsed = await idp.parseLoginRequest(sp, 'redirect', { query });
    request = {
      id: parsed.extract.request.id,
      acsUrl: parsed.extract.request.assertionConsumerServiceUrl,
      issuer: parsed.extract.issuer,
    };
  }

  const now = new Date(job.nowMs !== undefined ? job.nowMs : Date.now());
  const later = new Date(now.getTime() + 1000 * (job.lifetimeSecs !== undefined ? job.lifetimeSecs : 300));
  const inResponseTo =
    job.inResponseTo !== undefined ? job.inResponseTo : request ? request.id : '';
  const acsUrl = (request && request.acsUrl) || job.acsUrl;
  const recipient = job.recipient || acsUrl;
  const destination = job.destination || acsUrl;

  const customTagReplacement = (_template) => {
    const values = {
      ID: idp.entitySetting.generateID(),
      AssertionID: idp.entitySetting.generateID(),
      IssueInstant: now.toISOString(),
      Destination: destination,
      InResponseTo: inResponseTo,
      Issuer: job.idpEntityId,
      NameID: job.nameId,
      NotBefore: now.toISOString(),
      NotOnOrAfter: later.toISOString(),
      Recipient: recipient,
      Audience: job.audience || job.spEntityId,
      AuthnStatement: authnStatement(style, now.toISOString(), job.sessionIndex || '_session-1'),
      AttributeStatement: attributeStatement(style, job.attributes),
    };
    const context = style === 'entra' ? entraTemplate(values) : genericTemplate(values);
    return { id: values.ID, context };
  };

  const { context } = await idp.createLoginResponse(sp, null, 'post', {}, customTagReplacement);
  process.stdout.write(JSON.stringify({ samlResponse: context, request, metadata: idp.getMetadata() }));
}

main().catch((err) => {
  process.stderr.write(`samlify IdP failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
