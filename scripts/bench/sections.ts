/** Benchmark sections, in the order `deno task bench` runs them. */
import { section as backup } from "./backup.ts";
import { section as crypto } from "./crypto.ts";
import { section as deepCheck } from "./deepcheck.ts";
import { section as discovery } from "./discovery.ts";
import { section as erasure } from "./erasure.ts";
import { section as immutable } from "./immutable.ts";
import { section as lab } from "./lab.ts";
import { section as mutable } from "./mutable.ts";
import { section as storage } from "./storage.ts";

export interface BenchSection {
  name: string;
  title: string;
  run(): Promise<void>;
}

export const sections: BenchSection[] = [
  crypto,
  erasure,
  storage,
  mutable,
  discovery,
  immutable,
  deepCheck,
  lab,
  backup,
];
