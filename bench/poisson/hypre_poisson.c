/* hypre reference for bench/poisson: the manufactured 3-D Poisson problem solved by hypre's PCG.
 *
 * Problem (identical to skein's `poisson.problem=manufactured`, see bench/README.md "## poisson"):
 *   n x n x n cells, i,j,k = 0..n-1, h = 1/(n+1), x_i = (i+1) h (same for y, z);
 *   A = unscaled 7-point Laplacian: 6 on the diagonal, -1 per neighbour inside the grid (zero Dirichlet
 *   values just outside it); exact solution u = g(x) g(y) g(z), g(t) = e^t sin(pi t) (zero on the walls),
 *   g''(t) = e^t ((1 - pi^2) sin(pi t) + 2 pi cos(pi t));
 *   b_ijk = h^2 (-laplace u) = -h^2 [g''(x_i) g(y_j) g(z_k) + g(x_i) g''(y_j) g(z_k) + g(x_i) g(y_j) g''(z_k)];
 *   x0 = 0; stop when ||b - A x||_2 / ||b||_2 < tol (1e-8).
 *
 * Solvers (--solver):
 *   pfmg       Struct interface, PCG preconditioned by one PFMG V-cycle
 *   smg        Struct interface, PCG preconditioned by one SMG V-cycle
 *   boomeramg  IJ/ParCSR interface, PCG preconditioned by one BoomerAMG V-cycle
 *   cg         Struct interface, PCG with hypre's identity preconditioner (plain CG)
 *   jacobi     Struct interface, PCG with diagonal scaling (here 1/6 I, so the same iterates as cg)
 *
 * Stopping rule: HYPRE_*PCGSetTwoNorm(1), SetRelChange(0), SetTol(tol), absolute tolerance 0. hypre's
 * hypre_PCGSolve (src/krylov/pcg.c) then uses bi_prod = <b,b>, eps = tol^2 and stops when
 * <r,r> / <b,b> < eps, with r the recursively updated, unpreconditioned residual. That is
 * ||r||_2 / ||b||_2 < tol. The driver recomputes the true residual b - A x after the solve and reports it
 * as rel_residual (hypre's own figure is rel_residual_hypre).
 *
 * Output: one JSON line on stdout (rank 0) with solver, n, ranks, assemble_s, setup_s, solve_s, iterations,
 * rel_residual, rel_residual_hypre, max_error, rss_mb (peak RSS from getrusage, max over ranks), converged.
 * With --history FILE, rank 0 writes "iteration relative_residual" lines (iteration 0 = ||b||/||b|| = 1).
 * The history is taken by wrapping the preconditioner with a norm computation, which costs one extra
 * global reduction per iteration: do not use the timings of a --history run.
 *
 * Build: mpicc -O2 -I/usr/include/hypre hypre_poisson.c -o hypre_poisson -lHYPRE -lm
 * Run:   mpirun -np 2 ./hypre_poisson --solver pfmg --n 128
 */

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "HYPRE.h"
#include "HYPRE_krylov.h"
#include "HYPRE_parcsr_ls.h"
#include "HYPRE_struct_ls.h"

/* ------------------------------------------------------------------------------------------------------- */
/* options */

typedef struct {
  const char* solver;
  int n;
  double tol;
  int max_iter;
  const char* history;
  const char* rhs; /* manufactured (the benchmark's problem), ones, random */
  int pfmg_relax; /* 1 weighted Jacobi (hypre's default), 2 symmetric red/black Gauss-Seidel */
  int pfmg_skip;
  int pfmg_rap;
  int n_pre, n_post;
  double amg_theta;
  int amg_coarsen, amg_interp, amg_relax, amg_pmax;
  int print_level;
} Options;

static void usage(void) {
  fprintf(stderr,
          "usage: hypre_poisson --solver pfmg|smg|boomeramg|cg|jacobi --n N [--tol 1e-8] [--max-iter 10000]\n"
          "         [--rhs manufactured|ones|random] [--history FILE] [--pfmg-relax 1] [--pfmg-skip 0] [--pfmg-rap 0] [--pre 1] [--post 1]\n"
          "         [--amg-theta 0.25] [--amg-coarsen 10] [--amg-interp 6] [--amg-relax -1] [--amg-pmax 4]\n"
          "         [--print-level 0]\n");
}

static int parse(int argc, char** argv, Options* o) {
  o->solver = "pfmg";
  o->n = 64;
  o->tol = 1e-8;
  o->max_iter = 10000;
  o->history = NULL;
  o->rhs = "manufactured";
  o->pfmg_relax = 1;
  o->pfmg_skip = 0;
  o->pfmg_rap = 0;
  o->n_pre = 1;
  o->n_post = 1;
  o->amg_theta = 0.25;
  o->amg_coarsen = 10; /* HMIS, hypre's default */
  o->amg_interp = 6;   /* extended+i, hypre's default */
  o->amg_relax = -1;   /* -1: hypre's default (l1-Gauss-Seidel forward down, backward up: symmetric) */
  o->amg_pmax = 4;
  o->print_level = 0;
  for (int a = 1; a < argc; ++a) {
    const char* k = argv[a];
    const char* v = a + 1 < argc ? argv[a + 1] : NULL;
    if (!strcmp(k, "--help") || !strcmp(k, "-h")) return 1;
    if (!v) return 2;
    if (!strcmp(k, "--solver")) o->solver = v;
    else if (!strcmp(k, "--n")) o->n = atoi(v);
    else if (!strcmp(k, "--tol")) o->tol = atof(v);
    else if (!strcmp(k, "--max-iter")) o->max_iter = atoi(v);
    else if (!strcmp(k, "--history")) o->history = v;
    else if (!strcmp(k, "--rhs")) o->rhs = v;
    else if (!strcmp(k, "--pfmg-relax")) o->pfmg_relax = atoi(v);
    else if (!strcmp(k, "--pfmg-skip")) o->pfmg_skip = atoi(v);
    else if (!strcmp(k, "--pfmg-rap")) o->pfmg_rap = atoi(v);
    else if (!strcmp(k, "--pre")) o->n_pre = atoi(v);
    else if (!strcmp(k, "--post")) o->n_post = atoi(v);
    else if (!strcmp(k, "--amg-theta")) o->amg_theta = atof(v);
    else if (!strcmp(k, "--amg-coarsen")) o->amg_coarsen = atoi(v);
    else if (!strcmp(k, "--amg-interp")) o->amg_interp = atoi(v);
    else if (!strcmp(k, "--amg-relax")) o->amg_relax = atoi(v);
    else if (!strcmp(k, "--amg-pmax")) o->amg_pmax = atoi(v);
    else if (!strcmp(k, "--print-level")) o->print_level = atoi(v);
    else return 2;
    ++a;
  }
  if (o->n < 2) return 2;
  if (strcmp(o->rhs, "manufactured") && strcmp(o->rhs, "ones") && strcmp(o->rhs, "random")) return 2;
  if (strcmp(o->solver, "pfmg") && strcmp(o->solver, "smg") && strcmp(o->solver, "boomeramg") &&
      strcmp(o->solver, "cg") && strcmp(o->solver, "jacobi"))
    return 2;
  return 0;
}

/* ------------------------------------------------------------------------------------------------------- */
/* the block decomposition: MPI_Dims_create, even share per axis (the first n % p blocks get one more) */

typedef struct {
  int n, size, rank;
  int dims[3];   /* blocks along axis 0, 1, 2 (hypre index order: axis 0 is the fastest) */
  int coord[3];  /* this rank's block */
  int lo[3], hi[3]; /* inclusive global cell range of this rank */
  long nlocal;
} Decomp;

static int share_lo(int n, int p, int c) { return c * (n / p) + (c < n % p ? c : n % p); }

static int share_owner(int n, int p, int i) {
  int q = n / p, r = n % p;
  int big = r * (q + 1);
  return i < big ? i / (q + 1) : r + (i - big) / q;
}

static void decompose(int n, int size, int rank, Decomp* d) {
  int dd[3] = {0, 0, 0};
  MPI_Dims_create(size, 3, dd);
  /* the largest count on hypre's slowest axis (2), so that 2 ranks get contiguous slabs */
  d->dims[2] = dd[0];
  d->dims[1] = dd[1];
  d->dims[0] = dd[2];
  d->n = n;
  d->size = size;
  d->rank = rank;
  /* rank = c0 + dims0 * (c1 + dims1 * c2) */
  d->coord[0] = rank % d->dims[0];
  d->coord[1] = (rank / d->dims[0]) % d->dims[1];
  d->coord[2] = rank / (d->dims[0] * d->dims[1]);
  d->nlocal = 1;
  for (int a = 0; a < 3; ++a) {
    d->lo[a] = share_lo(n, d->dims[a], d->coord[a]);
    d->hi[a] = share_lo(n, d->dims[a], d->coord[a] + 1) - 1;
    d->nlocal *= d->hi[a] - d->lo[a] + 1;
  }
}

/* ------------------------------------------------------------------------------------------------------- */
/* the problem: rhs and exact solution on this rank's block, hypre order (axis 0 fastest) */

/* splitmix64 of the global cell index: the same random right-hand side on any rank count */
static double unit_random(unsigned long long key) {
  unsigned long long z = key + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return (double)(z >> 11) * (2.0 / 9007199254740992.0) - 1.0; /* uniform in [-1, 1) */
}

/* g(t) = e^t sin(pi t) and g''(t) = e^t ((1 - pi^2) sin(pi t) + 2 pi cos(pi t)) at t = (index + 1) h */
static void factor(int index, double h, double* g, double* g2) {
  const double pi = 3.14159265358979323846;
  const double t = (index + 1) * h, e = exp(t), s = sin(pi * t), c = cos(pi * t);
  *g = e * s;
  *g2 = e * ((1.0 - pi * pi) * s + 2.0 * pi * c);
}

/* manufactured: exact = g g g, b = -h^2 (g'' g g + g g'' g + g g g''). ones: b = h^2 (f = 1). random:
   b = h^2 U(-1,1) keyed by the global C-order index (i * n + j) * n + k. Only manufactured has an exact
   solution (NaN else). */
static void fill_rhs(const Decomp* d, const char* kind, double* b, double* exact) {
  const int n = d->n;
  const double h = 1.0 / (n + 1);
  const int manufactured = !strcmp(kind, "manufactured"), ones = !strcmp(kind, "ones");
  long p = 0;
  for (int k = d->lo[2]; k <= d->hi[2]; ++k) {
    double gz, gz2;
    factor(k, h, &gz, &gz2);
    for (int j = d->lo[1]; j <= d->hi[1]; ++j) {
      double gy, gy2;
      factor(j, h, &gy, &gy2);
      for (int i = d->lo[0]; i <= d->hi[0]; ++i, ++p) {
        if (manufactured) {
          double gx, gx2;
          factor(i, h, &gx, &gx2);
          exact[p] = gx * gy * gz;
          b[p] = -h * h * (gx2 * gy * gz + gx * gy2 * gz + gx * gy * gz2);
        } else {
          exact[p] = NAN;
          b[p] = ones ? h * h : h * h * unit_random(((unsigned long long)i * n + j) * n + k);
        }
      }
    }
  }
}

static double peak_rss_mb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
}

/* ------------------------------------------------------------------------------------------------------- */
/* residual history: a preconditioner wrapper that records ||r||_2 of the residual PCG hands it */

static double* g_hist = NULL;
static int g_hist_len = 0, g_hist_cap = 0;
static double* g_scratch = NULL;
static Decomp* g_decomp = NULL;
static HYPRE_PtrToStructSolverFcn g_struct_inner = NULL;
static HYPRE_StructSolver g_struct_inner_solver;
static HYPRE_PtrToParSolverFcn g_par_inner = NULL;
static HYPRE_Solver g_par_inner_solver;

static void hist_push(double norm) {
  if (g_hist_len == g_hist_cap) {
    g_hist_cap = g_hist_cap ? 2 * g_hist_cap : 256;
    g_hist = (double*)realloc(g_hist, sizeof(double) * g_hist_cap);
  }
  g_hist[g_hist_len++] = norm;
}

static HYPRE_Int struct_hist_precond(HYPRE_StructSolver s, HYPRE_StructMatrix A, HYPRE_StructVector r,
                                     HYPRE_StructVector z) {
  HYPRE_Int lo[3] = {g_decomp->lo[0], g_decomp->lo[1], g_decomp->lo[2]};
  HYPRE_Int hi[3] = {g_decomp->hi[0], g_decomp->hi[1], g_decomp->hi[2]};
  HYPRE_StructVectorGetBoxValues(r, lo, hi, g_scratch);
  double local = 0.0, global = 0.0;
  for (long p = 0; p < g_decomp->nlocal; ++p) local += g_scratch[p] * g_scratch[p];
  MPI_Allreduce(&local, &global, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  hist_push(sqrt(global));
  if (g_struct_inner) return g_struct_inner(g_struct_inner_solver, A, r, z);
  /* identity */
  HYPRE_StructVectorSetBoxValues(z, lo, hi, g_scratch);
  return 0;
}

static HYPRE_Int struct_hist_setup(HYPRE_StructSolver s, HYPRE_StructMatrix A, HYPRE_StructVector b,
                                   HYPRE_StructVector x) {
  (void)s;
  return 0; /* the inner preconditioner was set up before PCG's setup, timed as part of setup */
}

static HYPRE_Int par_hist_precond(HYPRE_Solver s, HYPRE_ParCSRMatrix A, HYPRE_ParVector r, HYPRE_ParVector z) {
  HYPRE_Real prod = 0.0;
  HYPRE_ParVectorInnerProd(r, r, &prod);
  hist_push(sqrt(prod));
  if (g_par_inner) return g_par_inner(g_par_inner_solver, A, r, z);
  return HYPRE_ParVectorCopy(r, z);
}

static HYPRE_Int par_hist_setup(HYPRE_Solver s, HYPRE_ParCSRMatrix A, HYPRE_ParVector b, HYPRE_ParVector x) {
  (void)s;
  return 0;
}

/* ------------------------------------------------------------------------------------------------------- */

typedef struct {
  double assemble_s, setup_s, solve_s, rel_res_hypre, rel_res_true, max_error;
  int iterations;
} Result;

static double allreduce_sum(double v) {
  double g = 0.0;
  MPI_Allreduce(&v, &g, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  return g;
}

static double allreduce_max(double v) {
  double g = 0.0;
  MPI_Allreduce(&v, &g, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return v != v ? v : g;
}

static void finish_result(const Decomp* d, const double* x, const double* r, const double* b,
                          const double* exact, Result* res) {
  double err = 0.0, rr = 0.0, bb = 0.0;
  for (long p = 0; p < d->nlocal; ++p) {
    double e = fabs(x[p] - exact[p]);
    if (e > err || e != e) err = e; /* NaN (no exact solution) propagates */
    rr += r[p] * r[p];
    bb += b[p] * b[p];
  }
  res->max_error = allreduce_max(err);
  rr = allreduce_sum(rr);
  bb = allreduce_sum(bb);
  res->rel_res_true = sqrt(rr / bb);
}

static void run_struct(const Options* o, Decomp* d, double* b, double* exact, Result* res) {
  MPI_Comm comm = MPI_COMM_WORLD;
  HYPRE_Int lo[3] = {d->lo[0], d->lo[1], d->lo[2]};
  HYPRE_Int hi[3] = {d->hi[0], d->hi[1], d->hi[2]};
  const int n = d->n;
  const long nl = d->nlocal;
  double* values = (double*)malloc(sizeof(double) * 7 * nl);
  double* x = (double*)calloc(nl, sizeof(double));
  double* r = (double*)malloc(sizeof(double) * nl);

  MPI_Barrier(comm);
  double t0 = MPI_Wtime();
  HYPRE_StructGrid grid;
  HYPRE_StructGridCreate(comm, 3, &grid);
  HYPRE_StructGridSetExtents(grid, lo, hi);
  HYPRE_StructGridAssemble(grid);

  HYPRE_StructStencil stencil;
  HYPRE_StructStencilCreate(3, 7, &stencil);
  HYPRE_Int offsets[7][3] = {{0, 0, 0}, {-1, 0, 0}, {1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {0, 0, -1}, {0, 0, 1}};
  for (int e = 0; e < 7; ++e) HYPRE_StructStencilSetElement(stencil, e, offsets[e]);

  HYPRE_StructMatrix A;
  HYPRE_StructMatrixCreate(comm, grid, stencil, &A);
  HYPRE_StructMatrixInitialize(A);
  HYPRE_Int entries[7] = {0, 1, 2, 3, 4, 5, 6};
  /* every cell: 6 on the diagonal, -1 towards each neighbour; a neighbour outside the grid is an air cell
     with value 0, so its coefficient is 0 */
  {
    long p = 0;
    for (int k = d->lo[2]; k <= d->hi[2]; ++k)
      for (int j = d->lo[1]; j <= d->hi[1]; ++j)
        for (int i = d->lo[0]; i <= d->hi[0]; ++i, ++p) {
          double* v = values + 7 * p;
          v[0] = 6.0;
          v[1] = i > 0 ? -1.0 : 0.0;
          v[2] = i < n - 1 ? -1.0 : 0.0;
          v[3] = j > 0 ? -1.0 : 0.0;
          v[4] = j < n - 1 ? -1.0 : 0.0;
          v[5] = k > 0 ? -1.0 : 0.0;
          v[6] = k < n - 1 ? -1.0 : 0.0;
        }
  }
  HYPRE_StructMatrixSetBoxValues(A, lo, hi, 7, entries, values);
  HYPRE_StructMatrixAssemble(A);
  free(values);

  HYPRE_StructVector hb, hx;
  HYPRE_StructVectorCreate(comm, grid, &hb);
  HYPRE_StructVectorCreate(comm, grid, &hx);
  HYPRE_StructVectorInitialize(hb);
  HYPRE_StructVectorInitialize(hx);
  HYPRE_StructVectorSetBoxValues(hb, lo, hi, b);
  HYPRE_StructVectorSetBoxValues(hx, lo, hi, x);
  HYPRE_StructVectorAssemble(hb);
  HYPRE_StructVectorAssemble(hx);
  MPI_Barrier(comm);
  double t1 = MPI_Wtime();

  HYPRE_StructSolver pcg, precond = NULL;
  HYPRE_StructPCGCreate(comm, &pcg);
  HYPRE_StructPCGSetTol(pcg, o->tol);
  HYPRE_StructPCGSetAbsoluteTol(pcg, 0.0);
  HYPRE_StructPCGSetMaxIter(pcg, o->max_iter);
  HYPRE_StructPCGSetTwoNorm(pcg, 1);
  HYPRE_StructPCGSetRelChange(pcg, 0);
  HYPRE_StructPCGSetPrintLevel(pcg, o->print_level);
  HYPRE_StructPCGSetLogging(pcg, 0);

  HYPRE_PtrToStructSolverFcn pfn = NULL, psetup = NULL;
  if (!strcmp(o->solver, "pfmg")) {
    HYPRE_StructPFMGCreate(comm, &precond);
    HYPRE_StructPFMGSetMaxIter(precond, 1);
    HYPRE_StructPFMGSetTol(precond, 0.0);
    HYPRE_StructPFMGSetZeroGuess(precond);
    HYPRE_StructPFMGSetRAPType(precond, o->pfmg_rap);
    HYPRE_StructPFMGSetRelaxType(precond, o->pfmg_relax);
    HYPRE_StructPFMGSetNumPreRelax(precond, o->n_pre);
    HYPRE_StructPFMGSetNumPostRelax(precond, o->n_post);
    HYPRE_StructPFMGSetSkipRelax(precond, o->pfmg_skip);
    HYPRE_StructPFMGSetPrintLevel(precond, 0);
    HYPRE_StructPFMGSetLogging(precond, 0);
    pfn = HYPRE_StructPFMGSolve;
    psetup = HYPRE_StructPFMGSetup;
  } else if (!strcmp(o->solver, "smg")) {
    HYPRE_StructSMGCreate(comm, &precond);
    HYPRE_StructSMGSetMemoryUse(precond, 0);
    HYPRE_StructSMGSetMaxIter(precond, 1);
    HYPRE_StructSMGSetTol(precond, 0.0);
    HYPRE_StructSMGSetZeroGuess(precond);
    HYPRE_StructSMGSetNumPreRelax(precond, o->n_pre);
    HYPRE_StructSMGSetNumPostRelax(precond, o->n_post);
    HYPRE_StructSMGSetPrintLevel(precond, 0);
    HYPRE_StructSMGSetLogging(precond, 0);
    pfn = HYPRE_StructSMGSolve;
    psetup = HYPRE_StructSMGSetup;
  } else if (!strcmp(o->solver, "jacobi")) {
    pfn = HYPRE_StructDiagScale;
    psetup = HYPRE_StructDiagScaleSetup;
  }
  if (o->history) {
    /* the inner preconditioner is set up here, inside the timed setup */
    g_struct_inner = pfn;
    g_struct_inner_solver = precond;
    g_decomp = d;
    g_scratch = (double*)malloc(sizeof(double) * nl);
    HYPRE_StructPCGSetPrecond(pcg, struct_hist_precond, struct_hist_setup, NULL);
  } else if (pfn) {
    HYPRE_StructPCGSetPrecond(pcg, pfn, psetup, precond);
  }

  MPI_Barrier(comm);
  double t2 = MPI_Wtime();
  if (o->history && psetup) psetup(precond, A, hb, hx);
  HYPRE_StructPCGSetup(pcg, A, hb, hx);
  MPI_Barrier(comm);
  double t3 = MPI_Wtime();
  HYPRE_StructPCGSolve(pcg, A, hb, hx);
  MPI_Barrier(comm);
  double t4 = MPI_Wtime();

  HYPRE_Int its = 0;
  HYPRE_Real rel = 0.0;
  HYPRE_StructPCGGetNumIterations(pcg, &its);
  HYPRE_StructPCGGetFinalRelativeResidualNorm(pcg, &rel);
  res->assemble_s = t1 - t0;
  res->setup_s = t3 - t2;
  res->solve_s = t4 - t3;
  res->iterations = its;
  res->rel_res_hypre = rel;

  /* true residual r = b - A x */
  HYPRE_StructVector hr;
  HYPRE_StructVectorCreate(comm, grid, &hr);
  HYPRE_StructVectorInitialize(hr);
  HYPRE_StructVectorSetBoxValues(hr, lo, hi, b);
  HYPRE_StructVectorAssemble(hr);
  HYPRE_StructMatrixMatvec(-1.0, A, hx, 1.0, hr);
  HYPRE_StructVectorGetBoxValues(hx, lo, hi, x);
  HYPRE_StructVectorGetBoxValues(hr, lo, hi, r);
  finish_result(d, x, r, b, exact, res);

  HYPRE_StructPCGDestroy(pcg);
  if (precond && !strcmp(o->solver, "pfmg")) HYPRE_StructPFMGDestroy(precond);
  if (precond && !strcmp(o->solver, "smg")) HYPRE_StructSMGDestroy(precond);
  HYPRE_StructVectorDestroy(hr);
  HYPRE_StructVectorDestroy(hx);
  HYPRE_StructVectorDestroy(hb);
  HYPRE_StructMatrixDestroy(A);
  HYPRE_StructStencilDestroy(stencil);
  HYPRE_StructGridDestroy(grid);
  free(x);
  free(r);
}

/* global row number of cell (i, j, k): ranks own contiguous row ranges, in rank order; inside a block the
   cells are numbered with axis 0 fastest */
static HYPRE_BigInt global_row(const Decomp* d, const long* rank_offset, int i, int j, int k) {
  int c[3], g[3] = {i, j, k}, lo[3], ext[3];
  for (int a = 0; a < 3; ++a) {
    c[a] = share_owner(d->n, d->dims[a], g[a]);
    lo[a] = share_lo(d->n, d->dims[a], c[a]);
    ext[a] = share_lo(d->n, d->dims[a], c[a] + 1) - lo[a];
  }
  int owner = c[0] + d->dims[0] * (c[1] + d->dims[1] * c[2]);
  return (HYPRE_BigInt)(rank_offset[owner] + (g[0] - lo[0]) + (long)ext[0] * ((g[1] - lo[1]) + (long)ext[1] * (g[2] - lo[2])));
}

static void run_ij(const Options* o, Decomp* d, double* b, double* exact, Result* res) {
  MPI_Comm comm = MPI_COMM_WORLD;
  const int n = d->n;
  const long nl = d->nlocal;
  long* rank_offset = (long*)calloc(d->size + 1, sizeof(long));
  for (int q = 0; q < d->size; ++q) {
    int c[3] = {q % d->dims[0], (q / d->dims[0]) % d->dims[1], q / (d->dims[0] * d->dims[1])};
    long cnt = 1;
    for (int a = 0; a < 3; ++a) cnt *= share_lo(n, d->dims[a], c[a] + 1) - share_lo(n, d->dims[a], c[a]);
    rank_offset[q + 1] = rank_offset[q] + cnt;
  }
  HYPRE_BigInt ilower = rank_offset[d->rank], iupper = rank_offset[d->rank + 1] - 1;
  double* x = (double*)calloc(nl, sizeof(double));
  double* r = (double*)malloc(sizeof(double) * nl);
  HYPRE_BigInt* rows = (HYPRE_BigInt*)malloc(sizeof(HYPRE_BigInt) * nl);
  for (long p = 0; p < nl; ++p) rows[p] = ilower + p;

  MPI_Barrier(comm);
  double t0 = MPI_Wtime();
  HYPRE_IJMatrix Aij;
  HYPRE_IJMatrixCreate(comm, ilower, iupper, ilower, iupper, &Aij);
  HYPRE_IJMatrixSetObjectType(Aij, HYPRE_PARCSR);
  HYPRE_IJMatrixInitialize(Aij);
  {
    HYPRE_BigInt cols[7];
    double vals[7];
    long p = 0;
    for (int k = d->lo[2]; k <= d->hi[2]; ++k)
      for (int j = d->lo[1]; j <= d->hi[1]; ++j)
        for (int i = d->lo[0]; i <= d->hi[0]; ++i, ++p) {
          HYPRE_Int nnz = 0;
          HYPRE_BigInt row = ilower + p;
          cols[nnz] = row;
          vals[nnz++] = 6.0;
          if (i > 0) { cols[nnz] = global_row(d, rank_offset, i - 1, j, k); vals[nnz++] = -1.0; }
          if (i < n - 1) { cols[nnz] = global_row(d, rank_offset, i + 1, j, k); vals[nnz++] = -1.0; }
          if (j > 0) { cols[nnz] = global_row(d, rank_offset, i, j - 1, k); vals[nnz++] = -1.0; }
          if (j < n - 1) { cols[nnz] = global_row(d, rank_offset, i, j + 1, k); vals[nnz++] = -1.0; }
          if (k > 0) { cols[nnz] = global_row(d, rank_offset, i, j, k - 1); vals[nnz++] = -1.0; }
          if (k < n - 1) { cols[nnz] = global_row(d, rank_offset, i, j, k + 1); vals[nnz++] = -1.0; }
          HYPRE_IJMatrixSetValues(Aij, 1, &nnz, &row, cols, vals);
        }
  }
  HYPRE_IJMatrixAssemble(Aij);
  HYPRE_ParCSRMatrix A;
  HYPRE_IJMatrixGetObject(Aij, (void**)&A);

  HYPRE_IJVector bij, xij, rij;
  HYPRE_IJVectorCreate(comm, ilower, iupper, &bij);
  HYPRE_IJVectorCreate(comm, ilower, iupper, &xij);
  HYPRE_IJVectorCreate(comm, ilower, iupper, &rij);
  HYPRE_IJVectorSetObjectType(bij, HYPRE_PARCSR);
  HYPRE_IJVectorSetObjectType(xij, HYPRE_PARCSR);
  HYPRE_IJVectorSetObjectType(rij, HYPRE_PARCSR);
  HYPRE_IJVectorInitialize(bij);
  HYPRE_IJVectorInitialize(xij);
  HYPRE_IJVectorInitialize(rij);
  HYPRE_IJVectorSetValues(bij, (HYPRE_Int)nl, rows, b);
  HYPRE_IJVectorSetValues(xij, (HYPRE_Int)nl, rows, x);
  HYPRE_IJVectorSetValues(rij, (HYPRE_Int)nl, rows, b);
  HYPRE_IJVectorAssemble(bij);
  HYPRE_IJVectorAssemble(xij);
  HYPRE_IJVectorAssemble(rij);
  HYPRE_ParVector pb, px, pr;
  HYPRE_IJVectorGetObject(bij, (void**)&pb);
  HYPRE_IJVectorGetObject(xij, (void**)&px);
  HYPRE_IJVectorGetObject(rij, (void**)&pr);
  MPI_Barrier(comm);
  double t1 = MPI_Wtime();

  HYPRE_Solver pcg, amg = NULL;
  HYPRE_ParCSRPCGCreate(comm, &pcg);
  HYPRE_PCGSetTol(pcg, o->tol);
  HYPRE_PCGSetAbsoluteTol(pcg, 0.0);
  HYPRE_PCGSetMaxIter(pcg, o->max_iter);
  HYPRE_PCGSetTwoNorm(pcg, 1);
  HYPRE_PCGSetRelChange(pcg, 0);
  HYPRE_PCGSetPrintLevel(pcg, o->print_level);
  HYPRE_PCGSetLogging(pcg, 0);

  HYPRE_BoomerAMGCreate(&amg);
  HYPRE_BoomerAMGSetMaxIter(amg, 1);
  HYPRE_BoomerAMGSetTol(amg, 0.0);
  HYPRE_BoomerAMGSetPrintLevel(amg, 0);
  HYPRE_BoomerAMGSetCoarsenType(amg, o->amg_coarsen);
  HYPRE_BoomerAMGSetInterpType(amg, o->amg_interp);
  HYPRE_BoomerAMGSetPMaxElmts(amg, o->amg_pmax);
  HYPRE_BoomerAMGSetStrongThreshold(amg, o->amg_theta);
  if (o->amg_relax >= 0) HYPRE_BoomerAMGSetRelaxType(amg, o->amg_relax);
  if (o->history) {
    g_par_inner = HYPRE_BoomerAMGSolve;
    g_par_inner_solver = amg;
    HYPRE_ParCSRPCGSetPrecond(pcg, par_hist_precond, par_hist_setup, NULL);
  } else {
    HYPRE_ParCSRPCGSetPrecond(pcg, HYPRE_BoomerAMGSolve, HYPRE_BoomerAMGSetup, amg);
  }

  MPI_Barrier(comm);
  double t2 = MPI_Wtime();
  if (o->history) HYPRE_BoomerAMGSetup(amg, A, pb, px);
  HYPRE_ParCSRPCGSetup(pcg, A, pb, px);
  MPI_Barrier(comm);
  double t3 = MPI_Wtime();
  HYPRE_ParCSRPCGSolve(pcg, A, pb, px);
  MPI_Barrier(comm);
  double t4 = MPI_Wtime();

  HYPRE_Int its = 0;
  HYPRE_Real rel = 0.0;
  HYPRE_PCGGetNumIterations(pcg, &its);
  HYPRE_PCGGetFinalRelativeResidualNorm(pcg, &rel);
  res->assemble_s = t1 - t0;
  res->setup_s = t3 - t2;
  res->solve_s = t4 - t3;
  res->iterations = its;
  res->rel_res_hypre = rel;

  HYPRE_ParCSRMatrixMatvec(-1.0, A, px, 1.0, pr);
  HYPRE_IJVectorGetValues(xij, (HYPRE_Int)nl, rows, x);
  HYPRE_IJVectorGetValues(rij, (HYPRE_Int)nl, rows, r);
  finish_result(d, x, r, b, exact, res);

  HYPRE_ParCSRPCGDestroy(pcg);
  HYPRE_BoomerAMGDestroy(amg);
  HYPRE_IJVectorDestroy(rij);
  HYPRE_IJVectorDestroy(xij);
  HYPRE_IJVectorDestroy(bij);
  HYPRE_IJMatrixDestroy(Aij);
  free(rows);
  free(x);
  free(r);
  free(rank_offset);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  Options o;
  int pr = parse(argc, argv, &o);
  if (pr) {
    if (rank == 0) usage();
    MPI_Finalize();
    return pr == 1 ? 0 : 2;
  }
  HYPRE_Init();

  Decomp d;
  decompose(o.n, size, rank, &d);
  double* b = (double*)malloc(sizeof(double) * d.nlocal);
  double* exact = (double*)malloc(sizeof(double) * d.nlocal);
  fill_rhs(&d, o.rhs, b, exact);

  Result res;
  memset(&res, 0, sizeof res);
  const int is_amg = !strcmp(o.solver, "boomeramg");
  if (is_amg)
    run_ij(&o, &d, b, exact, &res);
  else
    run_struct(&o, &d, b, exact, &res);

  double rss = allreduce_max(peak_rss_mb());
  if (rank == 0) {
    const char* name = !strcmp(o.solver, "pfmg")   ? "hypre-pfmg-pcg"
                       : !strcmp(o.solver, "smg")  ? "hypre-smg-pcg"
                       : is_amg                    ? "hypre-boomeramg-pcg"
                       : !strcmp(o.solver, "cg")   ? "hypre-cg"
                                                   : "hypre-jacobi-pcg";
    int converged = res.rel_res_hypre < o.tol;
    char err_text[32];
    if (res.max_error != res.max_error)
      snprintf(err_text, sizeof err_text, "null");
    else
      snprintf(err_text, sizeof err_text, "%.6e", res.max_error);
    printf("{\"solver\": \"%s\", \"n\": %d, \"ranks\": %d, \"assemble_s\": %.6f, \"setup_s\": %.6f, "
           "\"solve_s\": %.6f, \"iterations\": %d, \"rel_residual\": %.6e, \"rel_residual_hypre\": %.6e, "
           "\"max_error\": %s, \"rss_mb\": %.1f, \"converged\": %s, \"tol\": %g, \"hypre\": \"%s\", "
           "\"decomp\": [%d, %d, %d], \"rhs\": \"%s\"}\n",
           name, o.n, size, res.assemble_s, res.setup_s, res.solve_s, res.iterations, res.rel_res_true,
           res.rel_res_hypre, err_text, rss, converged ? "true" : "false", o.tol, HYPRE_RELEASE_VERSION,
           d.dims[0], d.dims[1], d.dims[2], o.rhs);
    fflush(stdout);
    if (o.history) {
      FILE* f = fopen(o.history, "w");
      if (!f) {
        fprintf(stderr, "hypre_poisson: cannot write %s\n", o.history);
      } else {
        fprintf(f, "# %s n=%d ranks=%d: iteration relative_residual (||r_k||_2 / ||b||_2)\n", name, o.n, size);
        double b0 = g_hist_len ? g_hist[0] : 1.0;
        for (int i = 0; i < g_hist_len; ++i) fprintf(f, "%d %.6e\n", i, g_hist[i] / b0);
        fclose(f);
      }
    }
  }
  free(b);
  free(exact);
  free(g_hist);
  free(g_scratch);
  HYPRE_Finalize();
  MPI_Finalize();
  return 0;
}
