/* Singular values and right singular vectors of a stack of small matrices (sdfit's
   diagnostics.py): one-sided Jacobi (Hestenes) per unit.  LAPACK through np.linalg.svd
   spends several microseconds of set-up on each 9 x 8 Jacobian of the census, longer than
   the arithmetic; Jacobi on columns is as accurate (it even keeps small singular values to
   high relative accuracy) and needs no workspace beyond one copy of the matrix.
   a: n x rows x p (C order); sv: n x p, descending; vt: n x p x p, rows are the right
   singular vectors (as np.linalg.svd's vh).  With rows < p the p - rows smallest values
   are structural zeros, set exactly to 0 as LAPACK reports them.  ROWS and P are defined
   before this source by the caller (one small library per shape): with them known the
   compiler unrolls the short loops over a column. */
#include <math.h>
#include <stdint.h>

#define SWEEPS 60
#define TOL 1e-15

void svd_stack(int64_t n, const double *a, double *sv, double *vt) {
  const int64_t rows = ROWS, p = P;
  double A[P][ROWS], V[P][P], norm[P];  /* columns of the matrix and of V, contiguous */
  int64_t order[P];
  for (int64_t u = 0; u < n; u++) {
    const double *au = a + u * rows * p;
    for (int64_t r = 0; r < rows; r++)
      for (int64_t k = 0; k < p; k++) A[k][r] = au[r * p + k];
    for (int64_t k = 0; k < p; k++)
      for (int64_t r = 0; r < p; r++) V[k][r] = k == r ? 1.0 : 0.0;
    for (int sweep = 0; sweep < SWEEPS; sweep++) {
      int rotated = 0;
      for (int64_t i = 0; i < p - 1; i++) {
        for (int64_t j = i + 1; j < p; j++) {
          double alpha = 0.0, beta = 0.0, gamma = 0.0;
          for (int64_t r = 0; r < rows; r++) {
            const double x = A[i][r], y = A[j][r];
            alpha += x * x;
            beta += y * y;
            gamma += x * y;
          }
          if (gamma == 0.0 || fabs(gamma) <= TOL * sqrt(alpha * beta)) continue;
          rotated = 1;
          const double zeta = (beta - alpha) / (2.0 * gamma);
          const double t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1.0 + zeta * zeta));
          const double c = 1.0 / sqrt(1.0 + t * t), s = c * t;
          for (int64_t r = 0; r < rows; r++) {
            const double x = A[i][r], y = A[j][r];
            A[i][r] = c * x - s * y;
            A[j][r] = s * x + c * y;
          }
          for (int64_t r = 0; r < p; r++) {
            const double x = V[i][r], y = V[j][r];
            V[i][r] = c * x - s * y;
            V[j][r] = s * x + c * y;
          }
        }
      }
      if (!rotated) break;
    }
    for (int64_t k = 0; k < p; k++) {
      double s2 = 0.0;
      for (int64_t r = 0; r < rows; r++) s2 += A[k][r] * A[k][r];
      norm[k] = sqrt(s2);
      order[k] = k;
    }
    for (int64_t k = 1; k < p; k++) {  /* insertion sort, descending; p is small */
      const int64_t o = order[k];
      int64_t m = k;
      for (; m > 0 && norm[order[m - 1]] < norm[o]; m--) order[m] = order[m - 1];
      order[m] = o;
    }
    for (int64_t k = 0; k < p; k++) {
      sv[u * p + k] = k < rows ? norm[order[k]] : 0.0;
      for (int64_t r = 0; r < p; r++) vt[(u * p + k) * p + r] = V[order[k]][r];
    }
  }
}
