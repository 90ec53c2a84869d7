/* Singular values and right singular vectors of a stack of small matrices (sdfit's
   diagnostics.py): one-sided Jacobi (Hestenes) per unit.  LAPACK through np.linalg.svd
   spends several microseconds of set-up on each 9 x 8 Jacobian of the census, longer than
   the arithmetic; Jacobi on columns is as accurate (it even keeps small singular values to
   high relative accuracy) and needs no workspace beyond one copy of the matrix.
   a: n x rows x p (C order); sv: n x p, descending; vt: n x p x p, rows are the right
   singular vectors (as np.linalg.svd's vh).  With rows < p the p - rows smallest values
   are structural zeros, set exactly to 0 as LAPACK reports them.  ROWS and P are defined
   before this source by the caller (one small library per shape): with them known the
   compiler unrolls the short loops over a column.

   LANES units are rotated side by side, the lane index innermost, so that the compiler
   runs them in vector registers.  A lane whose pair needs no rotation keeps its columns
   as they are (a select, not a rotation by the identity), and a lane that has converged
   sees whole sweeps without a rotation, which change nothing: every unit gets exactly the
   numbers it would get alone. */
#include <math.h>
#include <stdint.h>

#define SWEEPS 60
#define TOL 1e-15
#define LANES 8

void svd_stack(int64_t n, const double *a, double *sv, double *vt) {
  const int64_t rows = ROWS, p = P;
  double A[P][ROWS][LANES], V[P][P][LANES], norm[P][LANES];
  int64_t order[P];
  for (int64_t u0 = 0; u0 < n; u0 += LANES) {
    const int64_t lanes = n - u0 < LANES ? n - u0 : LANES;
    for (int64_t r = 0; r < rows; r++)
      for (int64_t k = 0; k < p; k++)
        for (int64_t l = 0; l < LANES; l++)  /* missing lanes: zero, never rotated */
          A[k][r][l] = l < lanes ? a[((u0 + l) * rows + r) * p + k] : 0.0;
    for (int64_t k = 0; k < p; k++)
      for (int64_t r = 0; r < p; r++)
        for (int64_t l = 0; l < LANES; l++) V[k][r][l] = k == r ? 1.0 : 0.0;
    for (int sweep = 0; sweep < SWEEPS; sweep++) {
      int rotated = 0;
      for (int64_t i = 0; i < p - 1; i++) {
        for (int64_t j = i + 1; j < p; j++) {
          double alpha[LANES] = {0}, beta[LANES] = {0}, gamma[LANES] = {0};
          double c[LANES], s[LANES];
          unsigned char skip[LANES];
          for (int64_t r = 0; r < rows; r++)
            for (int64_t l = 0; l < LANES; l++) {
              const double x = A[i][r][l], y = A[j][r][l];
              alpha[l] += x * x;
              beta[l] += y * y;
              gamma[l] += x * y;
            }
          int any = 0;
          for (int64_t l = 0; l < LANES; l++) {
            skip[l] = gamma[l] == 0.0 || fabs(gamma[l]) <= TOL * sqrt(alpha[l] * beta[l]);
            any |= !skip[l];
            const double zeta = (beta[l] - alpha[l]) / (2.0 * gamma[l]);
            const double t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1.0 + zeta * zeta));
            c[l] = 1.0 / sqrt(1.0 + t * t);
            s[l] = c[l] * t;
          }
          if (!any) continue;
          rotated = 1;
          for (int64_t r = 0; r < rows; r++)
            for (int64_t l = 0; l < LANES; l++) {
              const double x = A[i][r][l], y = A[j][r][l];
              A[i][r][l] = skip[l] ? x : c[l] * x - s[l] * y;
              A[j][r][l] = skip[l] ? y : s[l] * x + c[l] * y;
            }
          for (int64_t r = 0; r < p; r++)
            for (int64_t l = 0; l < LANES; l++) {
              const double x = V[i][r][l], y = V[j][r][l];
              V[i][r][l] = skip[l] ? x : c[l] * x - s[l] * y;
              V[j][r][l] = skip[l] ? y : s[l] * x + c[l] * y;
            }
        }
      }
      if (!rotated) break;
    }
    for (int64_t k = 0; k < p; k++)
      for (int64_t l = 0; l < LANES; l++) {
        double s2 = 0.0;
        for (int64_t r = 0; r < rows; r++) s2 += A[k][r][l] * A[k][r][l];
        norm[k][l] = sqrt(s2);
      }
    for (int64_t l = 0; l < lanes; l++) {
      const int64_t u = u0 + l;
      for (int64_t k = 0; k < p; k++) order[k] = k;
      for (int64_t k = 1; k < p; k++) {  /* insertion sort, descending; p is small */
        const int64_t o = order[k];
        int64_t m = k;
        for (; m > 0 && norm[order[m - 1]][l] < norm[o][l]; m--) order[m] = order[m - 1];
        order[m] = o;
      }
      for (int64_t k = 0; k < p; k++) {
        sv[u * p + k] = k < rows ? norm[order[k]][l] : 0.0;
        for (int64_t r = 0; r < p; r++) vt[(u * p + k) * p + r] = V[order[k]][r][l];
      }
    }
  }
}
