/* Identifiability diagnostics of a stack of small Jacobians (sdfit's diagnostics.py), the
   whole per-unit arithmetic of diagnostics._diagnose_numpy in one pass: column scaling,
   SVD, rank, condition, null-space shares and variances.  LAPACK through np.linalg.svd
   spends several microseconds of set-up on each 8 x 8 Jacobian of the census, longer than
   the arithmetic, and NumPy's per-unit arrays after it cost as much again.

   The SVD is one-sided Jacobi (Hestenes) on the columns: as accurate as LAPACK (it even
   keeps small singular values to high relative accuracy) and with no workspace beyond one
   copy of the matrix.  As LAPACK's dgesvj, it keeps each column's squared norm and updates
   it after a rotation (alpha' = alpha - t gamma, beta' = beta + t gamma), so that a pair
   costs one dot product instead of three; a norm that the update leaves below DRIFT of its
   old value has lost digits to cancellation (a column collapsing onto a null direction)
   and is recomputed.  The singular values themselves are recomputed from the columns.

   jac: n x rows x p (C order).  Outputs per unit as Diagnostics: rank (n), condition (n),
   nullspace, identifiable (0/1), variance (n x p).  A unit with a non-finite entry gets
   rank -1, NaN and 0.  With rows < p the p - rows smallest singular values are structural
   zeros, set exactly to 0 as LAPACK reports them.  ROWS and P are defined before this
   source by the caller (one small library per shape): with them known the compiler
   unrolls the short loops over a column.

   LANES units are rotated side by side, the lane index innermost, so that the compiler
   runs them in vector registers, and many of them, because a pair's rotation (two square
   roots and two divisions) is a chain of long latencies that only independent lanes
   fill.  A lane whose pair needs no rotation is rotated by the identity (c = 1, s = 0),
   which leaves every number as it is (up to the sign of a zero), and a lane that has
   converged sees whole sweeps of such: every unit gets exactly the numbers it would get
   alone. */
#include <math.h>
#include <stdint.h>

#define SWEEPS 60
#define TOL 1e-15
#define DRIFT 0.0625
/* as many lanes as keep A and V within 64 KB (they live on the stack), 8 to 32 */
#define FIT (8192 / (ROWS * P + P * P))
#define LANES (FIT >= 32 ? 32 : FIT >= 16 ? 16 : 8)

/* restrict: the two columns never overlap, which the compiler needs to vectorise */
static void rotate(int64_t len, double (*restrict x)[LANES], double (*restrict y)[LANES],
                   const double *c, const double *s) {
  for (int64_t r = 0; r < len; r++)
    for (int64_t l = 0; l < LANES; l++) {
      const double a = x[r][l], b = y[r][l];
      x[r][l] = c[l] * a - s[l] * b;
      y[r][l] = s[l] * a + c[l] * b;
    }
}

void diagnose_stack(int64_t n, const double *jac, double rank_rtol, double null_tol,
                    int64_t *rank, double *condition, double *nullspace,
                    unsigned char *identifiable, double *variance) {
  const int64_t rows = ROWS, p = P;
  double A[P][ROWS][LANES], V[P][P][LANES], norm2[P][LANES], scale[P][LANES];
  unsigned char finite[LANES];
  for (int64_t u0 = 0; u0 < n; u0 += LANES) {
    const int64_t lanes = n - u0 < LANES ? n - u0 : LANES;
    /* columns scaled to unit length (a zero column stays zero: wholly null); a unit with
       a non-finite entry, or a missing lane, is all zeros, never rotated */
    for (int64_t l = 0; l < LANES; l++) {
      const double *a = jac + (u0 + l) * rows * p;
      finite[l] = l < lanes;
      for (int64_t i = 0; finite[l] && i < rows * p; i++) finite[l] = isfinite(a[i]);
      for (int64_t k = 0; k < p; k++) {
        double s2 = 0.0;
        for (int64_t r = 0; r < rows; r++) {
          const double x = finite[l] ? a[r * p + k] : 0.0;
          s2 += x * x;
        }
        scale[k][l] = s2 > 0 ? sqrt(s2) : 1.0;
        for (int64_t r = 0; r < rows; r++)
          A[k][r][l] = finite[l] ? a[r * p + k] / scale[k][l] : 0.0;
      }
    }
    for (int64_t k = 0; k < p; k++) {
      for (int64_t l = 0; l < LANES; l++) norm2[k][l] = 0.0;
      for (int64_t r = 0; r < rows; r++)
        for (int64_t l = 0; l < LANES; l++) norm2[k][l] += A[k][r][l] * A[k][r][l];
      for (int64_t r = 0; r < p; r++)
        for (int64_t l = 0; l < LANES; l++) V[k][r][l] = k == r ? 1.0 : 0.0;
    }
    for (int sweep = 0; sweep < SWEEPS; sweep++) {
      int rotated = 0;
      for (int64_t i = 0; i < p - 1; i++) {
        for (int64_t j = i + 1; j < p; j++) {
          double gamma[LANES] = {0}, c[LANES], s[LANES], stale_i[LANES], stale_j[LANES];
          for (int64_t r = 0; r < rows; r++)
            for (int64_t l = 0; l < LANES; l++) gamma[l] += A[i][r][l] * A[j][r][l];
          int any = 0, stale = 0;
          for (int64_t l = 0; l < LANES; l++) {  /* branch-free, so that it vectorises */
            const double alpha = norm2[i][l], beta = norm2[j][l], g2 = 2.0 * gamma[l];
            /* |gamma| > TOL sqrt(alpha beta), squared: one square root fewer */
            const int on = gamma[l] * gamma[l] > TOL * TOL * (alpha * beta);
            /* the smaller root of t^2 + 2 zeta t - 1 = 0, zeta = (beta - alpha) / (2 gamma),
               with both sides multiplied by 2 |gamma|: one division fewer */
            const double d = beta - alpha;
            const double tan = copysign(1.0, d) * g2 / (fabs(d) + sqrt(d * d + g2 * g2));
            const double t = on ? tan : 0.0;
            c[l] = 1.0 / sqrt(1.0 + t * t);
            s[l] = c[l] * t;
            norm2[i][l] = alpha - t * gamma[l];
            norm2[j][l] = beta + t * gamma[l];
            stale_i[l] = norm2[i][l] < DRIFT * alpha;
            stale_j[l] = norm2[j][l] < DRIFT * beta;
            stale |= (norm2[i][l] < DRIFT * alpha) | (norm2[j][l] < DRIFT * beta);
            any |= on;
          }
          if (!any) continue;
          rotated = 1;
          rotate(rows, A[i], A[j], c, s);
          rotate(p, V[i], V[j], c, s);
          if (stale) {
            double a2[LANES] = {0}, b2[LANES] = {0};
            for (int64_t r = 0; r < rows; r++)
              for (int64_t l = 0; l < LANES; l++) {
                a2[l] += A[i][r][l] * A[i][r][l];
                b2[l] += A[j][r][l] * A[j][r][l];
              }
            for (int64_t l = 0; l < LANES; l++) {
              norm2[i][l] = stale_i[l] != 0.0 ? a2[l] : norm2[i][l];
              norm2[j][l] = stale_j[l] != 0.0 ? b2[l] : norm2[j][l];
            }
          }
        }
      }
      if (!rotated) break;
    }
    for (int64_t l = 0; l < lanes; l++) {
      const int64_t u = u0 + l;
      if (!finite[l]) {
        rank[u] = -1;
        condition[u] = NAN;
        for (int64_t q = 0; q < p; q++) {
          nullspace[u * p + q] = variance[u * p + q] = NAN;
          identifiable[u * p + q] = 0;
        }
        continue;
      }
      double norm[P], sv[P], inverse2[P];
      int64_t order[P];
      for (int64_t k = 0; k < p; k++) {
        double s2 = 0.0;
        for (int64_t r = 0; r < rows; r++) s2 += A[k][r][l] * A[k][r][l];
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
        sv[k] = k < rows ? norm[order[k]] : 0.0;
        inverse2[k] = (1.0 / sv[k]) * (1.0 / sv[k]);
      }
      int64_t kept = 0;  /* sv descends: the kept ones are a prefix */
      while (kept < p && sv[kept] > rank_rtol * sv[0]) kept++;
      rank[u] = kept;
      condition[u] = sv[p - 1] > 0 ? sv[0] / sv[p - 1] : INFINITY;
      /* V[order[k]] is the k-th right singular vector: the parameter's squared components
         along the null directions, and along the kept ones weighted by 1 / sv^2 */
      for (int64_t q = 0; q < p; q++) {
        double null2 = 0.0, var = 0.0;
        for (int64_t k = 0; k < p; k++) {
          const double v = V[order[k]][q][l];
          if (k < kept) var += inverse2[k] * (v * v);
          else null2 += v * v;
        }
        nullspace[u * p + q] = sqrt(null2);
        identifiable[u * p + q] = nullspace[u * p + q] <= null_tol;
        variance[u * p + q] = identifiable[u * p + q] ? var / (scale[q][l] * scale[q][l]) : NAN;
      }
    }
  }
}
