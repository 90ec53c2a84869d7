/* Helpers of sdfit's compiled kernels: each mirrors the NumPy function or the function of
   sdfit.model.runtime.functions that the generated code replaces, operation by operation. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#define SMALL 1e-6
static inline double sd_min(double a, double b) { return (a != a || b != b) ? NAN : (a < b ? a : b); }
static inline double sd_max(double a, double b) { return (a != a || b != b) ? NAN : (a > b ? a : b); }
static inline double sd_mod(double a, double b) {
  double m = fmod(a, b);
  if (m != 0) { if ((b < 0) != (m < 0)) m += b; } else { m = copysign(0.0, b); }
  return m;
}
static inline double sd_xidz(double a, double b, double v) { return fabs(b) < SMALL ? v : a / b; }
/* functions.delay_order: the order truncated, then lowered while order * TIME STEP exceeds
   the delay time */
static inline double sd_delay_order(double order, double dt, double delay) {
  double o = trunc(order);
  while (o * dt > delay && o > 0) o -= 1;
  return o;
}
static inline double sd_quantum(double a, double b) { return b < SMALL ? a : b * trunc(a / b); }
static inline double sd_pulse(double time, double start, double width, double height) {
  return ((start - SMALL <= time) & (time < start + width)) ? height : 0.0;
}
static inline double sd_pulse_train(double time, double start, double interval, double width,
                                    double end, int has_end, double height) {
  double single = sd_pulse(time, start, width, height);
  int within = has_end ? ((start <= time) & (time <= end)) : (start <= time);  /* as Vensim */
  double phase = sd_mod(time - start + SMALL, interval == 0 ? 1.0 : interval);
  double repeated = (within & (phase < width)) ? height : 0.0;
  return interval == 0 ? single : repeated;
}
/* np.interp on one value, as NumPy's compiled loop computes it */
static double sd_interp(double x, const double *xs, const double *ys, long n) {
  if (n == 1) return ys[0];
  if (x != x) return x;
  if (x < xs[0]) return ys[0];
  if (x > xs[n - 1]) return ys[n - 1];
  long lo = 0, hi = n - 1;
  while (hi - lo > 1) { long mid = (lo + hi) / 2; if (xs[mid] <= x) lo = mid; else hi = mid; }
  long j = xs[hi] <= x ? hi : lo;
  if (j == n - 1 || xs[j] == x) return ys[j];
  double slope = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j]);
  double r = slope * (x - xs[j]) + ys[j];
  if (r != r) { r = slope * (x - xs[j + 1]) + ys[j + 1]; if (r != r && ys[j] == ys[j + 1]) r = ys[j]; }
  return r;
}
static double sd_extrapolate(double x, const double *xs, const double *ys, long n) {
  double y = sd_interp(x, xs, ys, n);
  if (n < 2) return y;
  double below = ys[0] + (ys[1] - ys[0]) / (xs[1] - xs[0]) * (x - xs[0]);
  double above = ys[n - 1] + (ys[n - 1] - ys[n - 2]) / (xs[n - 1] - xs[n - 2]) * (x - xs[n - 1]);
  return x < xs[0] ? below : (x > xs[n - 1] ? above : y);
}
static double sd_hold_backward(double x, const double *xs, const double *ys, long n) {
  long count = 0;  /* np.searchsorted(xs, x, side="right"): NaN sorts last */
  if (x != x) count = n; else while (count < n && xs[count] <= x) count++;
  long index = count - 1 < 0 ? 0 : (count - 1 > n - 1 ? n - 1 : count - 1);
  return ys[index];
}
