/* One iteration of sdfit's batched Levenberg-Marquardt (sdfit/solvers/lm.py, _Run.iterate),
   unit by unit: the same arithmetic as its NumPy code, on the rows `work` of the solver's
   arrays (x: N x P, jac: N x M x P, r: N x M, all C-contiguous), without the temporaries
   and the per-call overhead that dominate small batches.  The model is evaluated between
   lm_propose and lm_update, by the caller, for every unit at once. */
#include <math.h>
#include <stdint.h>

#define EPS 2.220446049250313e-16

static double nan_max(double a, double b) { return (a != a || b != b) ? NAN : (a > b ? a : b); }

static double clip(double v, double lo, double hi) {
  if (v != v) return v;
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

/* Solve A s = b (n x n row-major, both overwritten; s in b) by LU with partial pivoting.
   A singular matrix gives NaN. */
static void lu_solve(int64_t n, double *A, double *b) {
  for (int64_t c = 0; c < n; c++) {
    int64_t pivot = c;
    for (int64_t i = c + 1; i < n; i++)
      if (fabs(A[i * n + c]) > fabs(A[pivot * n + c])) pivot = i;
    if (A[pivot * n + c] == 0) {
      for (int64_t i = 0; i < n; i++) b[i] = NAN;
      return;
    }
    if (pivot != c) {
      for (int64_t k = 0; k < n; k++) {
        double t = A[c * n + k]; A[c * n + k] = A[pivot * n + k]; A[pivot * n + k] = t;
      }
      double t = b[c]; b[c] = b[pivot]; b[pivot] = t;
    }
    for (int64_t i = c + 1; i < n; i++) {
      double factor = A[i * n + c] / A[c * n + c];
      for (int64_t k = c + 1; k < n; k++) A[i * n + k] -= factor * A[c * n + k];
      b[i] -= factor * b[c];
    }
  }
  for (int64_t i = n - 1; i >= 0; i--) {
    double v = b[i];
    for (int64_t k = i + 1; k < n; k++) v -= A[i * n + k] * b[k];
    b[i] = v / A[i * n + i];
  }
}

/* The damped Gauss-Newton step of each working unit: trial points (clipped into the box),
   the steps actually taken, the scaling d and the gtol test. */
void lm_propose(int64_t nw, const int64_t *work, int64_t m, int64_t p, const double *x,
                const double *jac, const double *r, const double *sse, const double *diag,
                const double *mu, const double *lower, const double *upper, double gtol,
                double *trial, double *step, double *d, unsigned char *done_g) {
  double g[p], A[p * p], s[p];
  unsigned char free_[p];
  for (int64_t w = 0; w < nw; w++) {
    const int64_t u = work[w];
    const double *J = jac + u * m * p, *ru = r + u * m, *xu = x + u * p;
    const double *lo = lower + u * p, *hi = upper + u * p, *du = diag + u * p;
    const double f = sse[u];
    double cmax = 0.0, dmax = -INFINITY;
    int nan_cosine = 0;
    for (int64_t k = 0; k < p; k++) {
      double gk = 0.0, norm2 = 0.0;
      for (int64_t j = 0; j < m; j++) {
        gk += J[j * p + k] * ru[j];
        norm2 += J[j * p + k] * J[j * p + k];
      }
      g[k] = gk;
      free_[k] = !((xu[k] <= lo[k] && gk > 0) || (xu[k] >= hi[k] && gk < 0));
      const double norm = sqrt(norm2);
      const double cosine = (free_[k] && norm > 0) ? fabs(gk) / (norm * sqrt(f)) : 0.0;
      if (cosine != cosine) nan_cosine = 1;
      else if (cosine > cmax) cmax = cosine;
      dmax = nan_max(dmax, du[k]);
    }
    if (nan_cosine) cmax = 0.0;  /* np.nan_to_num of a maximum that met a NaN */
    done_g[w] = (f == 0) || (cmax <= gtol);
    double *dw = d + w * p;
    for (int64_t k = 0; k < p; k++) {
      const double dk = nan_max(du[k], dmax * EPS);
      dw[k] = dk > 0 ? dk : 1.0;
    }
    for (int64_t k = 0; k < p; k++) {
      for (int64_t l = 0; l <= k; l++) {  /* J'J is symmetric: one half computed */
        double a = 0.0;
        for (int64_t j = 0; j < m; j++) a += J[j * p + k] * J[j * p + l];
        if (k == l) a += mu[u] * dw[k];
        A[k * p + l] = A[l * p + k] = (free_[k] && free_[l]) ? a : 0.0;
      }
      if (!free_[k]) A[k * p + k] += 1.0;
      s[k] = free_[k] ? g[k] : 0.0;
    }
    lu_solve(p, A, s);
    for (int64_t k = 0; k < p; k++) {
      const double t = clip(xu[k] + -s[k], lo[k], hi[k]);
      trial[w * p + k] = t;
      step[w * p + k] = t - xu[k];
    }
  }
}

/* Each working unit after its trial point was evaluated (residuals r_new, nw x M): accept
   or reject, Broyden's update, Nielsen's damping, the convergence tests; refresh[w] says
   that the unit needs a finite-difference Jacobian now.  codes: WORKING, GTOL, FTOL, XTOL,
   MAX_NFEV. */
void lm_update(int64_t nw, const int64_t *work, int64_t m, int64_t p, double ftol, double xtol,
               int64_t broyden, int64_t max_nfev, const int64_t *codes, double *x, double *jac,
               double *r, double *sse, double *mu, double *nu, unsigned char *fresh,
               int64_t *status, const int64_t *nfev, const double *r_new, const double *trial,
               const double *step, const double *d, const unsigned char *done_g,
               unsigned char *refresh) {
  double predicted_r[m];
  for (int64_t w = 0; w < nw; w++) {
    const int64_t u = work[w];
    double *J = jac + u * m * p, *ru = r + u * m, *xu = x + u * p;
    const double *rn = r_new + w * m, *sw = step + w * p, *dw = d + w * p;
    const double f = sse[u];
    double f_new = 0.0, fitted = 0.0;
    for (int64_t j = 0; j < m; j++) {
      f_new += rn[j] * rn[j];
      double v = 0.0;
      for (int64_t k = 0; k < p; k++) v += J[j * p + k] * sw[k];
      predicted_r[j] = ru[j] + v;
      fitted += predicted_r[j] * predicted_r[j];
    }
    if (!isfinite(f_new)) f_new = INFINITY;
    const double predicted = f - fitted, actual = f - f_new;
    const double rho = predicted > 0 ? actual / predicted : -INFINITY;
    const int accept = rho > 1e-4 && !done_g[w];
    double step_norm = 0.0, x_norm = 0.0, norm2 = 0.0;
    for (int64_t k = 0; k < p; k++) {
      const double a = sqrt(dw[k]) * sw[k], b = sqrt(dw[k]) * xu[k];
      step_norm += a * a;
      x_norm += b * b;
      norm2 += sw[k] * sw[k];
    }
    const int done_x = sqrt(step_norm) <= xtol * (xtol + sqrt(x_norm));
    const int done_f = accept && fabs(actual) <= ftol * f && predicted <= ftol * f && rho <= 2;
    const int was_fresh = fresh[u];
    const int stale = !accept && !done_g[w] && !was_fresh;
    if (broyden && accept) {
      const double scale = norm2 > 0 ? norm2 : 1.0;
      for (int64_t j = 0; j < m; j++) {
        const double secant = (rn[j] - predicted_r[j]) / scale;
        for (int64_t k = 0; k < p; k++) J[j * p + k] = J[j * p + k] + secant * sw[k];
      }
    }
    if (accept) {
      fresh[u] = 0;
      const double t = 2 * rho - 1;
      const double factor = 1 - pow(t, 3.0);
      mu[u] *= factor > 0.1 ? factor : 0.1;
      nu[u] = 2.0;
      for (int64_t k = 0; k < p; k++) xu[k] = trial[w * p + k];
      for (int64_t j = 0; j < m; j++) ru[j] = rn[j];
      sse[u] = f_new;
    } else if (!stale) {
      mu[u] *= nu[u];
      nu[u] *= 2.0;
    }
    int64_t code = codes[0];
    if (done_g[w]) code = codes[1];
    else if (done_f) code = codes[2];
    else if (done_x && !stale) code = codes[3];
    else if (nfev[u] >= max_nfev) code = codes[4];
    int again = (stale || (code != codes[0] && !was_fresh)) && nfev[u] < max_nfev;
    if (!broyden) again = again || (code == codes[0] && accept);
    status[u] = again ? codes[0] : code;
    refresh[w] = again;
  }
}

/* Moré's scaling kept non-decreasing: diag = max(diag, column norms squared of jac). */
void lm_rescale(int64_t nw, const int64_t *work, int64_t m, int64_t p, const double *jac,
                double *diag) {
  for (int64_t w = 0; w < nw; w++) {
    const int64_t u = work[w];
    const double *J = jac + u * m * p;
    for (int64_t k = 0; k < p; k++) {
      double norm2 = 0.0;
      for (int64_t j = 0; j < m; j++) norm2 += J[j * p + k] * J[j * p + k];
      diag[u * p + k] = nan_max(diag[u * p + k], norm2);
    }
  }
}
