// Telegram WebApp initData for integration tests, built the way Telegram builds it
// (core.telegram.org/bots/webapps: "Validating data received via the Mini App" and
// "Validating data for Third-Party Use"). Uses node:crypto only.
//
//   makeInitData({ botToken, user, authDate, extra })                  -> hash (HMAC) mode
//   makeSignedInitData({ botId, privateKey, user, authDate, extra,
//                        botToken })                                   -> signature (Ed25519) mode
//   generateTestKeyPair()                                              -> { privateKey, publicKeyHex }
//
// `user` is an object (serialized with JSON.stringify) or a ready JSON string; `authDate` is
// Unix seconds (default: now); `extra` maps further field names to values (strings, or objects
// serialized as JSON), e.g. { query_id: 'AAE…', start_param: 'shop_1' }.
import crypto from 'node:crypto';

export const TELEGRAM_PRODUCTION_PUBLIC_KEY_HEX =
  'e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d';

function fieldValue(value) {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

// The decoded fields in the order they go on the wire: extra fields, user, auth_date.
function baseFields({ user, authDate, extra }) {
  if (user === undefined) throw new Error('user is required');
  const fields = [];
  for (const [key, value] of Object.entries(extra ?? {})) {
    if (key === 'hash' || key === 'signature') throw new Error(`extra must not set ${key}`);
    fields.push([key, fieldValue(value)]);
  }
  fields.push(['user', fieldValue(user)]);
  fields.push(['auth_date', String(authDate ?? Math.floor(Date.now() / 1000))]);
  return fields;
}

// `key=value` lines sorted by key, skipping `excluded` keys, joined with '\n'.
export function dataCheckString(fields, excluded = ['hash']) {
  return fields
    .filter(([key]) => !excluded.includes(key))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`)
    .join('\n');
}

// Percent-encoded like Telegram's clients (spaces as %20).
function serialize(fields) {
  return fields
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`)
    .join('&');
}

function hmacHash(fields, botToken) {
  const secretKey = crypto.createHmac('sha256', 'WebAppData').update(botToken).digest();
  return crypto.createHmac('sha256', secretKey).update(dataCheckString(fields, ['hash'])).digest('hex');
}

export function makeInitData({ botToken, user, authDate, extra } = {}) {
  if (!botToken) throw new Error('botToken is required');
  const fields = baseFields({ user, authDate, extra });
  fields.push(['hash', hmacHash(fields, botToken)]);
  return serialize(fields);
}

// Signed by `privateKey` (a node KeyObject, Ed25519) for `botId`. With `botToken` a hash over
// every field, the signature included, is added too, as Telegram does; without it there is
// no hash field.
export function makeSignedInitData({ botId, privateKey, user, authDate, extra, botToken } = {}) {
  if (botId === undefined || botId === null || botId === '') throw new Error('botId is required');
  if (!privateKey) throw new Error('privateKey is required');
  const fields = baseFields({ user, authDate, extra });
  const message = `${botId}:WebAppData\n${dataCheckString(fields, ['hash', 'signature'])}`;
  const signature = crypto.sign(null, Buffer.from(message, 'utf8'), privateKey);
  fields.push(['signature', signature.toString('base64url')]);
  if (botToken) fields.push(['hash', hmacHash(fields, botToken)]);
  return serialize(fields);
}

// A fresh Ed25519 key pair; publicKeyHex is the raw 32-byte key for --telegram-public-key.
export function generateTestKeyPair() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url');
  return { privateKey, publicKeyHex: raw.toString('hex') };
}
