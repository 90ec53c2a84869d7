/* Each unit's posterior under its linearised residuals when every parameter is pooled
   (sdfit/solvers/mixed.py, Linearised.posterior): the same arithmetic as its NumPy code,
   unit by unit, without the temporaries and per-call overhead that dominate the
   population step once the model itself runs compiled.

   Per unit u (Q x Q matrices row-major, C-contiguous):
     A = Omega^-1 + G_u / s2 = L L'          the posterior precision
     delta = A^-1 (-g_u / s2 + Omega^-1 e_u)  the mode minus the linearisation point
     cov = A^-1, logdet = log |A|
     rss = sse_u + 2 g_u' delta + delta' G_u delta  (at least 0)
     spread = trace(cov G_u)
   A matrix that is not positive definite gives NaN. */
#include <math.h>
#include <stdint.h>

void mixed_posterior(int64_t n, int64_t q, const double *oi, double s2, const double *gram,
                     const double *grad, const double *sse, const double *e, double *delta,
                     double *cov, double *rss, double *spread, double *logdet) {
  double a[q * q], linv[q * q], rhs[q], y[q];
  for (int64_t u = 0; u < n; u++) {
    const double *G = gram + u * q * q, *g = grad + u * q, *eu = e + u * q;
    double *d = delta + u * q, *c = cov + u * q * q;
    for (int64_t i = 0; i < q * q; i++) a[i] = oi[i] + G[i] / s2;
    /* Cholesky, lower triangle in place */
    double ld = 0.0;
    for (int64_t j = 0; j < q; j++) {
      double s = a[j * q + j];
      for (int64_t k = 0; k < j; k++) s -= a[j * q + k] * a[j * q + k];
      if (!(s > 0)) {
        ld = NAN;
        break;
      }
      double root = sqrt(s);
      a[j * q + j] = root;
      ld += 2 * log(root);
      for (int64_t i = j + 1; i < q; i++) {
        double t = a[i * q + j];
        for (int64_t k = 0; k < j; k++) t -= a[i * q + k] * a[j * q + k];
        a[i * q + j] = t / root;
      }
    }
    logdet[u] = ld;
    if (ld != ld) {
      for (int64_t i = 0; i < q; i++) d[i] = NAN;
      for (int64_t i = 0; i < q * q; i++) c[i] = NAN;
      rss[u] = spread[u] = NAN;
      continue;
    }
    for (int64_t i = 0; i < q; i++) {
      double t = -g[i] / s2;
      for (int64_t k = 0; k < q; k++) t += oi[i * q + k] * eu[k];
      rhs[i] = t;
    }
    /* L y = rhs, L' d = y */
    for (int64_t i = 0; i < q; i++) {
      double t = rhs[i];
      for (int64_t k = 0; k < i; k++) t -= a[i * q + k] * y[k];
      y[i] = t / a[i * q + i];
    }
    for (int64_t i = q - 1; i >= 0; i--) {
      double t = y[i];
      for (int64_t k = i + 1; k < q; k++) t -= a[k * q + i] * d[k];
      d[i] = t / a[i * q + i];
    }
    /* L^-1 (lower), then cov = L^-T L^-1 */
    for (int64_t j = 0; j < q; j++) {
      for (int64_t i = 0; i < q; i++) linv[i * q + j] = 0.0;
      linv[j * q + j] = 1.0 / a[j * q + j];
      for (int64_t i = j + 1; i < q; i++) {
        double t = 0.0;
        for (int64_t k = j; k < i; k++) t -= a[i * q + k] * linv[k * q + j];
        linv[i * q + j] = t / a[i * q + i];
      }
    }
    for (int64_t i = 0; i < q; i++)
      for (int64_t j = 0; j <= i; j++) {
        double t = 0.0;
        for (int64_t k = i; k < q; k++) t += linv[k * q + i] * linv[k * q + j];
        c[i * q + j] = c[j * q + i] = t;
      }
    double r = sse[u], tr = 0.0;
    for (int64_t i = 0; i < q; i++) {
      double gd = 0.0;
      for (int64_t k = 0; k < q; k++) {
        gd += G[i * q + k] * d[k];
        tr += c[i * q + k] * G[k * q + i];
      }
      r += (2 * g[i] + gd) * d[i];
    }
    rss[u] = r > 0 ? r : 0.0;
    spread[u] = tr;
  }
}
