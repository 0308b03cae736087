import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from "node:crypto";

const ALGORITHM = "aes-256-gcm";
const TAG_BYTES = 16;

/** A fresh 12-byte nonce. */
export const newNonce = (): Buffer => randomBytes(12);

/** AES-256-GCM: ciphertext followed by the tag; `aad` binds it to where it is stored. */
export function seal(key: Buffer, nonce: Buffer, plain: Buffer, aad: string): Buffer {
  const c = createCipheriv(ALGORITHM, key, nonce);
  c.setAAD(Buffer.from(aad, "utf8"));
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

/** The plaintext, or undefined when the key, nonce, data or `aad` do not match. */
export function open(key: Buffer, nonce: Buffer, sealed: Buffer, aad: string): Buffer | undefined {
  if (sealed.length < TAG_BYTES) return undefined;
  try {
    const d = createDecipheriv(ALGORITHM, key, nonce);
    d.setAAD(Buffer.from(aad, "utf8"));
    d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG_BYTES)), d.final()]);
  } catch {
    return undefined;
  }
}

/** A 32-byte key from a passphrase (scrypt, N = 2^15). */
export function stretch(passphrase: string, salt: Buffer): Buffer {
  return scryptSync(passphrase, salt, 32, { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
}
