/* One iteration of sdfit's batched Levenberg-Marquardt (sdfit/solvers/lm.py, _Run.iterate),
   unit by unit: the arithmetic of its NumPy code (the damped normal equations solved by
   Cholesky rather than NumPy's LU, equal to round-off), on the rows `work` of the solver's
   arrays (x: N x P, jac: N x M x P, r: N x M, all C-contiguous), without the temporaries
   and the per-call overhead that dominate small batches.  The model is evaluated between
   lm_propose and lm_update, by the caller, for every unit at once. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define EPS 2.220446049250313e-16

/* A library built for one problem shape defines SHAPE_M and SHAPE_P (residuals and
   parameters per unit): with them known at compile time the short loops over a row are
   unrolled and vectorised and the work arrays have fixed sizes.  The arithmetic is the same
   (no reassociation without fast-math), so the numbers are too. */
#ifdef SHAPE_P
#define FIX_SHAPE() (m = SHAPE_M, p = SHAPE_P)
#else
#define FIX_SHAPE() ((void)0)
#endif

static double nan_max(double a, double b) { return (a != a || b != b) ? NAN : (a > b ? a : b); }

static double clip(double v, double lo, double hi) {
  if (v != v) return v;
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

/* Solve A s = b (n x n row-major, both overwritten; s in b) by LU with partial pivoting.
   A singular matrix gives NaN.  For problems of more than LANED_MAX_P parameters, and a
   unit whose damped matrix Cholesky finds not positive definite. */
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

/* Cholesky of LANES systems side by side, the lane index innermost so that the compiler
   keeps the lanes in vector registers: a unit's solve is a chain of divisions and square
   roots whose latency, not their number, sets its pace, and lanes hide it.  Each lane gets
   the numbers it would get alone.  A lane whose pivot is not positive (mu
   underflowed on a singular JᵀJ) is solved by lu_solve instead. */
#define LANES 8
#define LANED_MAX_P 16

static void solve_lanes(int64_t n, int64_t lanes, double *A, double *b) {
  double a[n][n][LANES], y[n][LANES];
  unsigned char ok[LANES];
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j <= i; j++)
      for (int64_t l = 0; l < LANES; l++)  /* missing lanes: the identity */
        a[i][j][l] = l < lanes ? A[l * n * n + i * n + j] : (i == j);
  for (int64_t l = 0; l < LANES; l++) ok[l] = 1;
  for (int64_t j = 0; j < n; j++) {
    for (int64_t l = 0; l < LANES; l++) {
      double v = a[j][j][l];
      for (int64_t k = 0; k < j; k++) v -= a[j][k][l] * a[j][k][l];
      ok[l] &= v > 0;
      a[j][j][l] = sqrt(v);
    }
    for (int64_t i = j + 1; i < n; i++)
      for (int64_t l = 0; l < LANES; l++) {
        double w = a[i][j][l];
        for (int64_t k = 0; k < j; k++) w -= a[i][k][l] * a[j][k][l];
        a[i][j][l] = w / a[j][j][l];
      }
  }
  for (int64_t i = 0; i < n; i++)
    for (int64_t l = 0; l < LANES; l++) {
      double v = l < lanes ? b[l * n + i] : 0.0;
      for (int64_t k = 0; k < i; k++) v -= a[i][k][l] * y[k][l];
      y[i][l] = v / a[i][i][l];
    }
  for (int64_t i = n - 1; i >= 0; i--)
    for (int64_t l = 0; l < LANES; l++) {
      double v = y[i][l];
      for (int64_t k = i + 1; k < n; k++) v -= a[k][i][l] * y[k][l];
      y[i][l] = v / a[i][i][l];
    }
  for (int64_t l = 0; l < lanes; l++) {
    if (!ok[l]) lu_solve(n, A + l * n * n, b + l * n);
    else for (int64_t i = 0; i < n; i++) b[l * n + i] = y[i][l];
  }
}

/* The damped Gauss-Newton step of each working unit: trial points (clipped into the box),
   the steps actually taken, the scaling d and the gtol test. */
void lm_propose(int64_t nw, const int64_t *work, int64_t m, int64_t p, const double *x,
                const double *jac, const double *r, const double *sse, const double *diag,
                const double *mu, const double *lower, const double *upper, double gtol,
                double *trial, double *step, double *d, unsigned char *done_g) {
  FIX_SHAPE();
  const int64_t group = p <= LANED_MAX_P ? LANES : 1;  /* units solved side by side */
  double g[p], As[group * p * p], ss[group * p];
  unsigned char free_[p];
  for (int64_t w0 = 0; w0 < nw; w0 += group) {
    const int64_t lanes = nw - w0 < group ? nw - w0 : group;
    for (int64_t w = w0; w < w0 + lanes; w++) {
      const int64_t u = work[w];
      double *A = As + (w - w0) * p * p, *s = ss + (w - w0) * p;
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
    }
    if (group > 1) solve_lanes(p, lanes, As, ss);
    else lu_solve(p, As, ss);
    for (int64_t w = w0; w < w0 + lanes; w++) {
      const int64_t u = work[w];
      const double *xu = x + u * p, *lo = lower + u * p, *hi = upper + u * p;
      const double *s = ss + (w - w0) * p;
      for (int64_t k = 0; k < p; k++) {
        const double t = clip(xu[k] + -s[k], lo[k], hi[k]);
        trial[w * p + k] = t;
        step[w * p + k] = t - xu[k];
      }
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
  FIX_SHAPE();
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
      const double factor = 1 - t * t * t;  /* as lm.py: pow() cost 2/3 as much as the rest of lm_update */
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
  FIX_SHAPE();
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

/* ---- The whole solve in compiled code, for residuals that are a C function too ---------
   lm_solve runs _Run.solve's loop (after its first evaluation and Jacobian) on blocks of
   rows taken from a shared counter, so threads share the work however unevenly the rows
   converge: per block, the steps above on its working rows, the residual function called
   between them, forward differences where a step calls for them, and the final Jacobian.
   Rows are independent, so a row's result does not depend on its block or thread. */

typedef int (*residual_fn)(const void *context, int64_t n, const int64_t *rows,
                           const double *X, double *R);

typedef struct {
  residual_fn fun;
  const void *context;
  int64_t m, p;
  double diff_step;
  const double *upper;
  double *x, *r, *jac;
  int64_t *nfev, *njev;
  unsigned char *fresh;
  /* scratch for n rows: their p perturbed rows, the rows' indices, residuals, steps */
  double *xs, *rs, *h;
  int64_t *xrows;
} differences;

static double max1(double a) { return (a != a) ? a : (a > 1.0 ? a : 1.0); }

/* Forward-difference Jacobians of the rows `rows`, every column in one call (as
   _Run.differentiate). */
static int differentiate(const differences *D, int64_t n, const int64_t *rows) {
  int64_t m = D->m, p = D->p;
  FIX_SHAPE();
  if (n == 0) return 0;
  for (int64_t w = 0; w < n; w++) {
    const int64_t u = rows[w];
    const double *xu = D->x + u * p;
    for (int64_t k = 0; k < p; k++) {
      double h = D->diff_step * max1(fabs(xu[k]));
      if (xu[k] + h > D->upper[u * p + k]) h = -h;
      for (int64_t j = 0; j < p; j++) D->xs[(w * p + j) * p + k] = j == k ? xu[k] + h : xu[k];
      D->h[w * p + k] = D->xs[(w * p + k) * p + k] - xu[k];
      D->xrows[w * p + k] = u;
    }
  }
  if (D->fun(D->context, n * p, D->xrows, D->xs, D->rs)) return 1;
  for (int64_t w = 0; w < n; w++) {
    const int64_t u = rows[w];
    D->nfev[u] += p;
    D->njev[u] += 1;
    D->fresh[u] = 1;
    for (int64_t j = 0; j < m; j++)
      for (int64_t k = 0; k < p; k++)
        D->jac[(u * m + j) * p + k] =
            (D->rs[(w * p + k) * m + j] - D->r[u * m + j]) / D->h[w * p + k];
  }
  return 0;
}

/* Scratch of one thread for blocks of `block` rows; NULL when memory ran out. */
static differences *scratch(residual_fn fun, const void *context, int64_t block, int64_t m,
                            int64_t p, double diff_step, const double *upper, double *x,
                            double *r, double *jac, int64_t *nfev, int64_t *njev,
                            unsigned char *fresh) {
  differences *D = malloc(sizeof(differences));
  if (!D) return 0;
  *D = (differences){fun, context, m, p, diff_step, upper, x, r, jac, nfev, njev, fresh,
                     malloc(sizeof(double) * block * p * p),
                     malloc(sizeof(double) * block * p * m), malloc(sizeof(double) * block * p),
                     malloc(sizeof(int64_t) * block * p)};
  return D;
}

static void release(differences *D) {
  if (!D) return;
  free(D->xs); free(D->rs); free(D->h); free(D->xrows); free(D);
}

/* The start of _Run.solve for blocks of rows: the residuals at x (r) and, for the rows where
   they are finite, the Jacobian; other rows get the status codes[5] (not finite).  Returns 0,
   or 1 when memory ran out. */
int lm_start(residual_fn fun, const void *context, int64_t n_rows, int64_t *next,
             int64_t block, int64_t m, int64_t p, double diff_step, const int64_t *codes,
             double *x, double *jac, double *r, unsigned char *fresh, int64_t *status,
             int64_t *nfev, int64_t *njev, const double *upper) {
  FIX_SHAPE();
  int64_t *rows = malloc(sizeof(int64_t) * block);
  differences *D = scratch(fun, context, block, m, p, diff_step, upper, x, r, jac, nfev, njev,
                           fresh);
  int failed = !(rows && D && D->xs && D->rs && D->h && D->xrows);
  while (!failed) {
    const int64_t first = __atomic_fetch_add(next, block, __ATOMIC_RELAXED);
    if (first >= n_rows) break;
    const int64_t stop = first + block < n_rows ? first + block : n_rows, n = stop - first;
    for (int64_t i = 0; i < n; i++) rows[i] = first + i;
    if (fun(context, n, rows, x + first * p, r + first * m)) { failed = 1; break; }
    int64_t nf = 0;
    for (int64_t u = first; u < stop; u++) {
      nfev[u] += 1;
      double sse = 0.0;  /* finite exactly when NumPy's sum is: the terms are not negative */
      for (int64_t j = 0; j < m; j++) sse += r[u * m + j] * r[u * m + j];
      if (isfinite(sse)) rows[nf++] = u;
      else status[u] = codes[5];
    }
    if (differentiate(D, nf, rows)) failed = 1;
  }
  free(rows);
  release(D);
  return failed;
}

/* Returns 0, or 1 when memory ran out (in this thread or the residual function). */
int lm_solve(residual_fn fun, const void *context, int64_t n_rows, int64_t *next,
             int64_t block, int64_t m, int64_t p, double diff_step, double ftol, double xtol,
             double gtol, int64_t broyden, int64_t max_nfev, const int64_t *codes, double *x,
             double *jac, double *r, double *sse, double *diag, double *mu, double *nu,
             unsigned char *fresh, int64_t *status, int64_t *nfev, int64_t *njev,
             const double *lower, const double *upper, const unsigned char *finite) {
  FIX_SHAPE();
  int64_t *work = malloc(sizeof(int64_t) * block), *again = malloc(sizeof(int64_t) * block);
  double *trial = malloc(sizeof(double) * block * p), *step = malloc(sizeof(double) * block * p);
  double *d = malloc(sizeof(double) * block * p), *r_new = malloc(sizeof(double) * block * m);
  unsigned char *done_g = malloc(block), *refresh = malloc(block);
  differences *D = scratch(fun, context, block, m, p, diff_step, upper, x, r, jac, nfev, njev,
                           fresh);
  int failed = !(work && again && trial && step && d && r_new && done_g && refresh && D &&
                 D->xs && D->rs && D->h && D->xrows);
  while (!failed) {
    const int64_t first = __atomic_fetch_add(next, block, __ATOMIC_RELAXED);
    if (first >= n_rows) break;
    const int64_t stop = first + block < n_rows ? first + block : n_rows;
    int64_t nw = 0;
    for (int64_t u = first; u < stop; u++)
      if (status[u] == codes[0]) work[nw++] = u;
    while (nw > 0 && !failed) {
      lm_propose(nw, work, m, p, x, jac, r, sse, diag, mu, lower, upper, gtol, trial, step, d,
                 done_g);
      for (int64_t w = 0; w < nw; w++) nfev[work[w]] += 1;
      if (fun(context, nw, work, trial, r_new)) { failed = 1; break; }
      lm_update(nw, work, m, p, ftol, xtol, broyden, max_nfev, codes, x, jac, r, sse, mu, nu,
                fresh, status, nfev, r_new, trial, step, d, done_g, refresh);
      int64_t n_again = 0;
      for (int64_t w = 0; w < nw; w++)
        if (refresh[w]) again[n_again++] = work[w];
      if (differentiate(D, n_again, again)) { failed = 1; break; }
      lm_rescale(nw, work, m, p, jac, diag);
      int64_t left = 0;
      for (int64_t w = 0; w < nw; w++)
        if (status[work[w]] == codes[0]) work[left++] = work[w];
      nw = left;
    }
    /* rows that stopped on an accepted step: the Jacobian at their final point */
    int64_t n_final = 0;
    for (int64_t u = first; u < stop; u++)
      if (finite[u] && !fresh[u]) again[n_final++] = u;
    if (!failed && differentiate(D, n_final, again)) failed = 1;
  }
  free(work); free(again); free(trial); free(step); free(d); free(r_new); free(done_g);
  free(refresh);
  release(D);
  return failed;
}
