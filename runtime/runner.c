/*
 * runner.c - generic command-line runner for one grim-compiled model.
 *
 * Build: cc -O2 -Iruntime/include runtime/runner.c model.o \
 *           libgrim_runtime.a -lpthread -ldl -lm -o runner
 *
 * Usage: runner [--threads N] [--repeat R] IN0.raw [IN1.raw ...] -- OUT0.raw [...]
 *
 * Inputs and outputs are raw little-endian f32 files. With R > 1, one
 * warm-up run is followed by R timed runs and one line
 *   timing_ms: median=<m> min=<a> max=<b> mean=<u> runs=<R>
 * is printed to stdout, followed, for a model compiled with per-layer
 * profiling (`grimc bench --per-layer`), by one line per layer that ran
 *   layer_ms: index=<i> total=<t> calls=<c>
 * where <t> is the layer's time summed over the R timed runs (the warm-up
 * run is left out) and <c> the number of times it ran in them. A model
 * compiled without profiling prints no layer_ms line. The compiler's
 * benchmark command parses these lines; nothing else is ever written to
 * stdout. The outputs of the last run are written.
 * Errors go to stderr as "runner: error: ..." with exit code 2.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grim_runtime.h"

#define EXIT_USAGE 2

static void fail(const char* fmt, ...) {
  va_list ap;
  fputs("runner: error: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(EXIT_USAGE);
}

static void usage_fail(const char* why) {
  fprintf(stderr,
          "runner: error: %s\n"
          "usage: runner [--threads N] [--repeat R] IN0.raw [IN1.raw ...] -- OUT0.raw [...]\n",
          why);
  exit(EXIT_USAGE);
}

static long parse_long(const char* flag, const char* s, long lo, long hi) {
  char* end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
    fail("invalid value '%s' for %s (expected an integer in [%ld, %ld])", s, flag, lo, hi);
  return v;
}

/* The file format is little-endian; swap on the (unlikely) big-endian host
 * so the same .raw files work everywhere. */
static int host_is_big_endian(void) {
  const uint32_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 0;
}

static void swap_f32_bytes(float* data, size_t count) {
  unsigned char* p = (unsigned char*)data;
  for (size_t i = 0; i < count; i++, p += 4) {
    unsigned char t0 = p[0], t1 = p[1];
    p[0] = p[3];
    p[1] = p[2];
    p[2] = t1;
    p[3] = t0;
  }
}

/* Byte size of `count` f32 elements, failing on negative or overflowing
 * counts coming from the model description. */
static size_t f32_bytes(int64_t count, const char* what, int index) {
  if (count < 0 || (uint64_t)count > SIZE_MAX / 4)
    fail("model %s %d has an invalid element count %lld", what, index, (long long)count);
  return (size_t)count * 4;
}

/* 64-byte aligned (vector-friendly) buffer; never NULL, even for 0 bytes. */
static float* alloc_f32(size_t bytes, const char* what) {
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  if (rounded < bytes) fail("%s is too large (%zu bytes)", what, bytes);
  void* p = aligned_alloc(64, rounded);
  if (!p) fail("out of memory allocating %zu bytes for %s", rounded, what);
  memset(p, 0, rounded);
  return (float*)p;
}

static float* read_input(const char* path, int64_t count, int index) {
  size_t expect = f32_bytes(count, "input", index);
  FILE* f = fopen(path, "rb");
  if (!f) fail("cannot open input %d '%s': %s", index, path, strerror(errno));
  if (fseeko(f, 0, SEEK_END) != 0) fail("cannot seek in input '%s': %s", path, strerror(errno));
  off_t size = ftello(f);
  if (size < 0) fail("cannot determine the size of input '%s': %s", path, strerror(errno));
  if ((uint64_t)size != (uint64_t)expect)
    fail("input %d '%s' has %lld bytes, expected %zu bytes (%lld f32 elements)", index, path,
         (long long)size, expect, (long long)count);
  if (fseeko(f, 0, SEEK_SET) != 0) fail("cannot seek in input '%s': %s", path, strerror(errno));
  char what[64];
  snprintf(what, sizeof what, "input %d", index);
  float* buf = alloc_f32(expect, what);
  if (expect > 0 && fread(buf, 1, expect, f) != expect)
    fail("short read from input '%s': %s", path, ferror(f) ? strerror(errno) : "unexpected end of file");
  fclose(f);
  if (host_is_big_endian()) swap_f32_bytes(buf, (size_t)count);
  return buf;
}

/* Writes via "<path>.tmp" + rename so a reader never sees a half-written
 * output, even if the runner is killed midway. */
static void write_output(const char* path, float* data, int64_t count, int index) {
  size_t bytes = f32_bytes(count, "output", index);
  size_t plen = strlen(path);
  char* tmp = malloc(plen + 5);
  if (!tmp) fail("out of memory");
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp", 5);
  if (host_is_big_endian()) swap_f32_bytes(data, (size_t)count);
  FILE* f = fopen(tmp, "wb");
  if (!f) fail("cannot create '%s': %s", tmp, strerror(errno));
  int ok = (bytes == 0 || fwrite(data, 1, bytes, f) == bytes);
  int err = errno;
  ok = (fflush(f) == 0) && ok;
  if (fclose(f) != 0) ok = 0;
  if (!ok) {
    remove(tmp);
    fail("cannot write output %d '%s': %s", index, tmp, strerror(err ? err : EIO));
  }
  if (rename(tmp, path) != 0) {
    err = errno;
    remove(tmp);
    fail("cannot rename '%s' to '%s': %s", tmp, path, strerror(err));
  }
  free(tmp);
}

static double now_ms(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) fail("clock_gettime failed: %s", strerror(errno));
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static void run_once(grim_context* ctx, const float* const* in, float* const* out) {
  int32_t rc = grim_model_run(ctx, in, out);
  if (rc != 0) fail("model run failed with code %d", (int)rc);
}

int main(int argc, char** argv) {
  long threads = 0, repeat = 1;
  const char** ins = calloc((size_t)argc, sizeof *ins);
  const char** outs = calloc((size_t)argc, sizeof *outs);
  if (!ins || !outs) fail("out of memory");
  int nin = 0, nout = 0, seen_sep = 0;

  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    if (seen_sep) {
      outs[nout++] = a;
    } else if (strcmp(a, "--") == 0) {
      seen_sep = 1;
    } else if (strcmp(a, "--threads") == 0 || strcmp(a, "--repeat") == 0) {
      if (i + 1 >= argc) usage_fail("missing value after option");
      if (a[2] == 't')
        threads = parse_long("--threads", argv[++i], 0, INT32_MAX);
      else
        repeat = parse_long("--repeat", argv[++i], 1, 1000000000L);
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage_fail("help requested");
    } else if (a[0] == '-' && a[1] == '-') {
      fail("unknown option '%s'", a);
    } else {
      ins[nin++] = a;
    }
  }
  if (!seen_sep) usage_fail("missing '--' between input and output files");

  const grim_model_info* info = grim_model_describe();
  if (!info) fail("grim_model_describe returned NULL");
  const char* name = info->name ? info->name : "(unnamed)";
  if (info->num_inputs < 0 || info->num_outputs < 0) fail("model '%s' has an invalid description", name);
  if (nin != info->num_inputs)
    fail("model '%s' takes %d input(s), got %d input file(s)", name, (int)info->num_inputs, nin);
  if (nout != info->num_outputs)
    fail("model '%s' produces %d output(s), got %d output file(s)", name, (int)info->num_outputs, nout);

  const float** in = calloc((size_t)nin + 1, sizeof *in);
  float** out = calloc((size_t)nout + 1, sizeof *out);
  if (!in || !out) fail("out of memory");
  for (int i = 0; i < nin; i++) in[i] = read_input(ins[i], info->input_sizes[i], i);
  for (int i = 0; i < nout; i++) {
    char what[64];
    snprintf(what, sizeof what, "output %d", i);
    out[i] = alloc_f32(f32_bytes(info->output_sizes[i], "output", i), what);
  }

  grim_context* ctx = grim_context_create((int32_t)threads);
  if (!ctx) fail("cannot create a runtime context with %ld thread(s)", threads);

  if (repeat <= 1) {
    run_once(ctx, in, out);
  } else {
    double* ms = malloc((size_t)repeat * sizeof *ms);
    if (!ms) fail("out of memory");
    run_once(ctx, in, out); /* warm-up: page faults, scratch growth, caches */
    grim_profile_reset(ctx);
    for (long r = 0; r < repeat; r++) {
      double t0 = now_ms();
      run_once(ctx, in, out);
      ms[r] = now_ms() - t0;
    }
    qsort(ms, (size_t)repeat, sizeof *ms, cmp_double);
    double median = (repeat % 2) ? ms[repeat / 2] : 0.5 * (ms[repeat / 2 - 1] + ms[repeat / 2]);
    double sum = 0.0;
    for (long r = 0; r < repeat; r++) sum += ms[r];
    /* The mean is what per-layer totals / runs compare with. */
    printf("timing_ms: median=%.6f min=%.6f max=%.6f mean=%.6f runs=%ld\n", median, ms[0], ms[repeat - 1],
           sum / (double)repeat, repeat);
    int64_t layers = grim_profile_layers(ctx);
    for (int64_t i = 0; i < layers; i++) {
      uint64_t calls = grim_profile_calls(ctx, i);
      /* Indices below the highest one may be unused (never begun). */
      if (calls == 0) continue;
      printf("layer_ms: index=%lld total=%.6f calls=%llu\n", (long long)i,
             (double)grim_profile_ns(ctx, i) / 1e6, (unsigned long long)calls);
    }
    if (fflush(stdout) != 0) fail("cannot write to stdout: %s", strerror(errno));
    free(ms);
  }

  for (int i = 0; i < nout; i++) write_output(outs[i], out[i], info->output_sizes[i], i);

  grim_context_destroy(ctx);
  for (int i = 0; i < nin; i++) free((void*)in[i]);
  for (int i = 0; i < nout; i++) free(out[i]);
  free(in);
  free(out);
  free(ins);
  free(outs);
  return 0;
}
