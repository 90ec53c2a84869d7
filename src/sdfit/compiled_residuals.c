/* The residuals of solver rows in compiled code (sdfit/compiled_residuals.py): the model's
   compiled kernel run on the rows, read at each observation slot and weighted, with the
   same arithmetic as Objective.residuals for the gaussian likelihood.  The solver's compiled
   loop (sdfit/solvers/lm.c, lm_solve) calls it between its steps without returning to
   Python. */
#include <stdint.h>
#include <stdlib.h>

typedef int (*kernel_fn)(int64_t first, int64_t stop, int64_t n, const double *const *in,
                         const int64_t *stride, const double *times, const int64_t *saved,
                         int64_t nsteps, int64_t nsaved, double dt, const double *tab,
                         double *out);

/* How each input of the kernel is set for a row. */
enum { OWN = 0, SHARED = 1, PARAMETER = 2, UNIT = 3 };

typedef struct {
  kernel_fn run;
  const double *times;
  const int64_t *saved;
  int64_t nsteps, nsaved;
  double dt;
  const double *tab;
  int64_t nrecord;
  int64_t ninputs;
  const int64_t *kind;        /* per input: OWN (the model's equation), SHARED, ... */
  const int64_t *column;      /* PARAMETER: column of the row; UNIT: column of the unit */
  const double *const *base;  /* SHARED: the value; UNIT: the units' table, row-major */
  const int64_t *width;       /* UNIT: the table's row length */
  const int64_t *unit;        /* the chunk's unit of each solver row */
  int64_t m, p;               /* observation slots per unit, parameters per row */
  const int64_t *record_of;   /* observed variable -> its position in the kernel's record */
  const int64_t *var, *lo, *hi;  /* unit x slot: variable, saved steps around the time */
  const double *fraction, *sqrt_w, *value;
  const unsigned char *mask;
  int64_t interpolate;
} problem;

/* Residuals R (n x m) of the rows `rows` at parameters X (n x p); 1 when out of memory. */
int sdfit_residuals(const problem *q, int64_t n, const int64_t *rows, const double *X,
                    double *R) {
  const int64_t k_in = q->ninputs > 0 ? q->ninputs : 1;
  const double **in = malloc(sizeof(double *) * k_in);
  int64_t *stride = malloc(sizeof(int64_t) * k_in);
  double *gathered = malloc(sizeof(double) * k_in * (n > 0 ? n : 1));
  double *out = malloc(sizeof(double) * (q->nrecord * q->nsaved * n + 1));
  int status = 1;
  if (!in || !stride || !gathered || !out) goto done;
  for (int64_t k = 0; k < q->ninputs; k++) {
    stride[k] = 0;
    in[k] = 0;
    if (q->kind[k] == SHARED) {
      in[k] = q->base[k];
    } else if (q->kind[k] == PARAMETER) {
      in[k] = X + q->column[k];
      stride[k] = q->p;
    } else if (q->kind[k] == UNIT) {
      double *column = gathered + k * n;
      for (int64_t i = 0; i < n; i++)
        column[i] = q->base[k][q->unit[rows[i]] * q->width[k] + q->column[k]];
      in[k] = column;
      stride[k] = 1;
    }
  }
  status = q->run(0, n, n, in, stride, q->times, q->saved, q->nsteps, q->nsaved, q->dt, q->tab,
                  out);
  if (status) goto done;
  const int64_t m = q->m;
  for (int64_t i = 0; i < n; i++) {
    const int64_t u = q->unit[rows[i]];
    for (int64_t j = 0; j < m; j++) {
      const int64_t s = u * m + j;
      if (!q->mask[s]) {
        R[i * m + j] = 0.0;
        continue;
      }
      const int64_t series = q->record_of[q->var[s]] * q->nsaved;
      double v = out[(series + q->lo[s]) * n + i];
      if (q->interpolate) {
        const double w = q->fraction[s];
        const double hi = out[(series + q->hi[s]) * n + i];
        v = w > 0 ? v * (1 - w) + hi * w : v;
      }
      R[i * m + j] = q->sqrt_w[s] * (v - q->value[s]);
    }
  }
done:
  free(in);
  free(stride);
  free(gathered);
  free(out);
  return status;
}
