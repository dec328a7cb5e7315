/* FMA throughput microbenchmark for `cargo xtask bench kernels`.
 *
 * usage: fma_peak THREADS
 * Each thread runs 12 independent chains of 256-bit vfmadd (8 x f32) so the
 * FMA pipes, not the FMA latency, limit the rate; prints one line:
 *   fma_peak: threads=T gflops=G seconds=S
 * Compiled with `cc -O2 -march=native -pthread` (needs AVX2 + FMA).
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 12
static long iterations = 2000000000L / CHAINS; /* about 0.3 s per thread at 100 GFLOP/s */
static volatile float sink;

/* Twelve named accumulators (an array would be kept in memory at -O2). */
#define FOR_EACH(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
static void *work(void *arg) {
    (void)arg;
#define DECLARE(i) __m256 acc##i = _mm256_set1_ps((float)(i) * 1e-3f);
    FOR_EACH(DECLARE)
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (long n = 0; n < iterations; n++) {
#define STEP(i) acc##i = _mm256_fmadd_ps(acc##i, a, b);
        FOR_EACH(STEP)
    }
    __m256 s = acc0;
#define SUM(i) s = _mm256_add_ps(s, acc##i);
    FOR_EACH(SUM)
    float out[8];
    _mm256_storeu_ps(out, s);
    sink = out[0];
    return NULL;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (threads < 1 || threads > 256) {
        fprintf(stderr, "usage: fma_peak THREADS\n");
        return 2;
    }
    work(NULL); /* warm-up: clocks up, code in cache */
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        pthread_t tid[256];
        double t0 = now();
        for (int i = 0; i < threads; i++) pthread_create(&tid[i], NULL, work, NULL);
        for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
        double t = now() - t0;
        if (t < best) best = t;
    }
    double flops = 2.0 * 8.0 * CHAINS * (double)iterations * threads;
    printf("fma_peak: threads=%d gflops=%.2f seconds=%.4f\n", threads, flops / best / 1e9, best);
    return 0;
}
