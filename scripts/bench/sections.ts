/** Benchmark sections, in the order `deno task bench` runs them. */
export interface BenchSection {
  name: string;
  title: string;
  run(): Promise<void>;
}

export const sections: BenchSection[] = [];
