/**
 * Pure crypto core: tagged hashes, secure random, AES-256-CTR, Ed25519,
 * hash trees, key derivation and caps. No I/O. Spec: docs/crypto.md, docs/caps.md.
 */
export { sha256, taggedHash, TaggedHasher, type TagName, TAGS } from "./hash.ts";
export { randomBytes } from "./random.ts";
export { aesCtr, aesCtrSync } from "./aes.ts";
export { isAcceptablePublicKey, publicKeyFromSeed, sign, verify } from "./ed25519.ts";
export { publicKeyFromSeedSync } from "./ed25519_sync.ts";
export { HashTree, hashTreeFiller, hashTreeNode, MAX_LEAVES, verifyLeaf } from "./hashtree.ts";
export {
  convergenceKey,
  fingerprintFromPublicKey,
  immutableStorageIndex,
  leaseSecrets,
  mutableDataKey,
  type MutableKeys,
  mutableKeysFromSeed,
  readkeyFromWritekey,
  slotCreationMessage,
  storageIndexFromFingerprint,
  storageIndexFromPublicKey,
  uploadSecret,
  writeEnabler,
  writeEnablerMaster,
  writekeyFromSeed,
} from "./keys.ts";
export {
  type Cap,
  CAP_PREFIX,
  CapError,
  type CapErrorCode,
  type CapKind,
  capKindName,
  capStorageIndex,
  capStorageIndexSync,
  diminishCap,
  formatCap,
  isDirCap,
  isImmutableCap,
  isMutableCap,
  isReadCap,
  isVerifyCap,
  isWriteCap,
  MAX_CAP_LENGTH,
  parseCap,
  readcapOf,
  verifycapOf,
} from "./caps.ts";
