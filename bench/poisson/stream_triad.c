/* Memory bandwidth of a[i] = b[i] + s c[i] over arrays far larger than the caches (STREAM's triad), run by
 * one process or by several at once (bench/poisson/run --stream): the ceiling a memory-bound stencil solve
 * like multigrid-PCG meets when it goes from 1 to P ranks on one node. Prints the best of --reps GB/s. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char** argv) {
  const long n = argc > 1 ? atol(argv[1]) : 40L * 1000 * 1000; /* 3 x 320 MB of doubles */
  const int reps = argc > 2 ? atoi(argv[2]) : 10;
  double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
  if (!a || !b || !c) return 1;
  for (long i = 0; i < n; ++i) a[i] = 0, b[i] = 1, c[i] = 2;
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now();
    for (long i = 0; i < n; ++i) a[i] = b[i] + 3.0 * c[i];
    const double t = now() - t0;
    if (t < best) best = t;
  }
  printf("%.2f GB/s (triad, %ld doubles, check %.1f)\n", 3.0 * 8.0 * (double)n / best / 1e9, n, a[n / 2]);
  return 0;
}
