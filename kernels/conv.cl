// Convolutions (cross-correlation, NCDHW, weights [O, C, kD, kH, kW], 2-D = depth 1) as
// implicit GEMMs C[m][n] = sum_k A(m, k) * B(k, n). Nothing is materialised: every operand is
// addressed through small host-built tables (cached per geometry), so the kernels do no
// integer division:
//
//   A(m, k) = a[atab[k] + m * a_ms]
//   B(k, n) = gather(x, ktab[k] + ntab[n]), an int4 (flat offset, z, y, x): the element
//             x[.x] when (z, y, x) lies inside `dims`, else 0 (zero padding)
//   C(m, n) -> out[split * split_stride + nb * obs + p + m * o_ms] (+ bias[m], then LeakyReLU
//             of slope `slope` when `has_act`: the fused conv + bias + activation)
//
// The voxel tables hold one batch item (P voxels, the same for every layer of a given shape);
// the batch index nb of a voxel index v = nb * P + p is split off with one division per column
// per work-group (kb = 0: the batch runs along N; x offset nb * xbs), or once per K slice
// (kb = 1, backward_weight: the batch runs along K; then A(m, k) = a[nb * abs + m * a_ms + p]
// and C(m, n) -> out[split * split_stride + m * o_ms + n]).
//
//   forward:             M = O, N = batch * output voxels, K = C * taps
//                        (ktab = taps, ntab = output voxel origins)
//   backward_data (s=1): the forward GEMM over gy with the flipped, transposed kernel and
//                        mirrored padding: M = C, N = batch * input voxels, K = O * taps
//   backward_weight:     M = O, N = C * taps, K = batch * output voxels, split over the third
//                        grid dimension (split-K) and summed by `sum_splits`
//                        (ktab = output voxel origins, ntab = taps: the forward tables swapped)
//
// conv_gemm: each work-group computes a TM x TN tile, stepping through K in slices of TK
// staged in local memory; each work-item accumulates an RM x RN register block (rows
// ty + i*NTY; columns in float4 groups (tx + g*NTX)*4 + q when RN % 4 == 0, read from local
// memory as float4, else tx + j*NTX). With PF = 1 the next K slice is loaded from global
// memory into registers while the current one is multiplied (register double buffering).
// TM, TN, TK, RM, RN, PF are chosen per layer by the host (one program per tile shape, -D
// options): by `ConvTiles::for_gemm`, or timed on the device when autotuning is on.
// conv_small_m: for M <= 4 (O = 1, 2 MSD output layers, C = 1 backward_data) one work-item per
// column keeps all M accumulators; taps and weights are staged in local memory in chunks.

#ifndef TM
#define TM 64
#endif
#ifndef TN
#define TN 64
#endif
#ifndef TK
#define TK 16
#endif
#ifndef RM
#define RM 4
#endif
#ifndef RN
#define RN 4
#endif
#ifndef PF
#define PF 0
#endif
#define NTX (TN / RN)
#define NTY (TM / RM)
#define NT (NTX * NTY)
#define BSTRIDE (TN + 4)

#define INSIDE3(u, d) \
    ((uint)(u).y < (uint)(d).x && (uint)(u).z < (uint)(d).y && (uint)(u).w < (uint)(d).z)
// A column origin that no tap brings inside the volume (columns past N).
#define NO_COL ((int4)(0, -0x20000000, 0, 0))

// The fused activation of the stored outputs: LeakyReLU of slope `slope` when `has_act`.
inline float leaky_act(float v, int has_act, float slope) {
    return (has_act && !(v > 0.0f)) ? slope * v : v;
}
#define ACT(v) leaky_act((v), has_act, slope)

#if RN % 4 == 0
#define COLJ(j) ((tx + ((j) / 4) * NTX) * 4 + ((j) % 4))
#else
#define COLJ(j) (tx + (j) * NTX)
#endif

// kb = 1 (K runs over batch x voxels): (batch item, voxel) of K index k0 + kk for kk < TK: one
// division by P per slice (the same for every element), then a few subtractions.
inline int2 batch_voxel(int k0, int kk, int P) {
    int nb = k0 / P;
    int p = k0 - nb * P + kk;
    while (p >= P) {
        p -= P;
        ++nb;
    }
    return (int2)(nb, p);
}

// Elements of the A and B slices at K offset k0, numbered e (A: row-major TM x TK, B:
// TK x TN); 0 outside the matrices.
inline float gemm_a(__global const float* a, __global const int* atab, int a_ms, int M,
                    int kend, int kb, int P, int abs_, int m0, int k0, int e) {
    int ml = e / TK, kk = e % TK;
    int m = m0 + ml, k = k0 + kk;
    if (e >= TM * TK || m >= M || k >= kend)
        return 0.0f;
    if (kb) {
        int2 v = batch_voxel(k0, kk, P);
        return a[v.x * abs_ + m * a_ms + v.y];
    }
    return a[atab[k] + m * a_ms];
}

inline float gemm_b(__global const float* x, __global const int4* ktab, __local const int4* Cs,
                    int4 dims, int kend, int kb, int P, int xbs, int k0, int e) {
    int kk = e / TN, n = e % TN;
    int k = k0 + kk;
    if (e >= TK * TN || k >= kend)
        return 0.0f;
    int4 u = Cs[n];
    if (kb) {
        int2 v = batch_voxel(k0, kk, P);
        u += ktab[v.y];
        u.x += v.x * xbs;
    } else {
        u += ktab[k];
    }
    return INSIDE3(u, dims) ? x[u.x] : 0.0f;
}

#define A_PER ((TM * TK + NT - 1) / NT)
#define B_PER ((TK * TN + NT - 1) / NT)
#define A_ELEM(k0, e) gemm_a(a, atab, a_ms, M, kend, kb, P, abs_, m0, (k0), (e))
#define B_ELEM(k0, e) gemm_b(x, ktab, Cs, dims, kend, kb, P, xbs, (k0), (e))

__kernel __attribute__((reqd_work_group_size(NTX, NTY, 1)))
void conv_gemm(__global const float* a, __global const int* atab, int a_ms,
               __global const float* x, __global const int4* ktab, __global const int4* ntab,
               __global float* out, int o_ms, int split_stride, __global const float* bias,
               int has_bias, int M, int N, int K, int kchunk, int4 dims, int kb, int P,
               int xbs, int abs_, int obs, int has_act, float slope) {
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int lid = ty * NTX + tx;
    const int n0 = get_group_id(0) * TN, m0 = get_group_id(1) * TM;
    const int split = get_group_id(2);
    const int kbegin = split * kchunk;
    const int kend = min(kbegin + kchunk, K);
    __local float As[TK][TM + 1];
    __local float4 Bs4[TK * BSTRIDE / 4];
    __local float* Bs = (__local float*)Bs4;
    __local int4 Cs[TN];
    for (int e = lid; e < TN; e += NT) {
        int n = n0 + e;
        int4 c = NO_COL;
        if (n < N) {
            if (kb) {
                c = ntab[n];
            } else {
                int nb = n / P;
                c = ntab[n - nb * P];
                c.x += nb * xbs;
            }
        }
        Cs[e] = c;
    }
    float acc[RM][RN];
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
        for (int j = 0; j < RN; ++j)
            acc[i][j] = 0.0f;
    barrier(CLK_LOCAL_MEM_FENCE);
#if PF
    // Register prefetch: the next K slice is read from global memory into registers while
    // the current one is multiplied out of local memory.
    float pa[A_PER], pb[B_PER];
#pragma unroll
    for (int i = 0; i < A_PER; ++i)
        pa[i] = A_ELEM(kbegin, lid + i * NT);
#pragma unroll
    for (int i = 0; i < B_PER; ++i)
        pb[i] = B_ELEM(kbegin, lid + i * NT);
#endif
    for (int k0 = kbegin; k0 < kend; k0 += TK) {
#pragma unroll
        for (int i = 0; i < A_PER; ++i) {
            int e = lid + i * NT;
            if ((TM * TK) % NT == 0 || e < TM * TK) {
#if PF
                As[e % TK][e / TK] = pa[i];
#else
                As[e % TK][e / TK] = A_ELEM(k0, e);
#endif
            }
        }
#pragma unroll
        for (int i = 0; i < B_PER; ++i) {
            int e = lid + i * NT;
            if ((TK * TN) % NT == 0 || e < TK * TN) {
#if PF
                Bs[(e / TN) * BSTRIDE + e % TN] = pb[i];
#else
                Bs[(e / TN) * BSTRIDE + e % TN] = B_ELEM(k0, e);
#endif
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
#if PF
        if (k0 + TK < kend) {
#pragma unroll
            for (int i = 0; i < A_PER; ++i)
                pa[i] = A_ELEM(k0 + TK, lid + i * NT);
#pragma unroll
            for (int i = 0; i < B_PER; ++i)
                pb[i] = B_ELEM(k0 + TK, lid + i * NT);
        }
#endif
#pragma unroll
        for (int kk = 0; kk < TK; ++kk) {
            float av[RM], bv[RN];
#pragma unroll
            for (int i = 0; i < RM; ++i)
                av[i] = As[kk][ty + i * NTY];
#if RN % 4 == 0
#pragma unroll
            for (int g = 0; g < RN / 4; ++g) {
                float4 t = Bs4[(kk * BSTRIDE) / 4 + tx + g * NTX];
                bv[4 * g] = t.x;
                bv[4 * g + 1] = t.y;
                bv[4 * g + 2] = t.z;
                bv[4 * g + 3] = t.w;
            }
#else
#pragma unroll
            for (int j = 0; j < RN; ++j)
                bv[j] = Bs[kk * BSTRIDE + tx + j * NTX];
#endif
#pragma unroll
            for (int i = 0; i < RM; ++i)
#pragma unroll
                for (int j = 0; j < RN; ++j)
                    acc[i][j] = mad(av[i], bv[j], acc[i][j]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    out += split * split_stride;
    int oc[RN];
#pragma unroll
    for (int j = 0; j < RN; ++j) {
        int c = n0 + COLJ(j);
        int nb = kb ? 0 : c / P;
        oc[j] = c < N ? (kb ? c : nb * obs + c - nb * P) : -1;
    }
#pragma unroll
    for (int i = 0; i < RM; ++i) {
        int m = m0 + ty + i * NTY;
        if (m < M) {
            float b0 = has_bias ? bias[m] : 0.0f;
#pragma unroll
            for (int j = 0; j < RN; ++j) {
                if (oc[j] >= 0) {
                    out[oc[j] + m * o_ms] = ACT(acc[i][j] + b0);
                }
            }
        }
    }
}

#define SM 4
#define SCH 128

// One column per work-item, SM rows per work-group row (get_group_id(1)); 1-D work-groups.
__kernel void conv_small_m(__global const float* a, __global const int* atab, int a_ms,
                           __global const float* x, __global const int4* ktab,
                           __global const int4* ntab, __global float* out, int o_ms,
                           __global const float* bias, int has_bias, int M, int N, int K,
                           int4 dims, int P, int xbs, int obs, int has_act, float slope) {
    const int lid = get_local_id(0), wg = get_local_size(0);
    const int n = get_global_id(0);
    const int m0 = get_group_id(1) * SM;
    __local int4 ks[SCH];
    __local float ws[SM][SCH];
    const int nb = n / P;
    int4 c = NO_COL;
    if (n < N) {
        c = ntab[n - nb * P];
        c.x += nb * xbs;
    }
    float acc[SM];
#pragma unroll
    for (int i = 0; i < SM; ++i)
        acc[i] = 0.0f;
    for (int k0 = 0; k0 < K; k0 += SCH) {
        for (int e = lid; e < SCH; e += wg) {
            int k = k0 + e;
            ks[e] = k < K ? ktab[k] : NO_COL;
        }
        for (int e = lid; e < SM * SCH; e += wg) {
            int mm = e / SCH, kk = e % SCH;
            int m = m0 + mm, k = k0 + kk;
            ws[mm][kk] = (m < M && k < K) ? a[atab[k] + m * a_ms] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        const int kn = min(SCH, K - k0);
#pragma unroll 4
        for (int kk = 0; kk < kn; ++kk) {
            int4 u = ks[kk] + c;
            float v = INSIDE3(u, dims) ? x[u.x] : 0.0f;
#pragma unroll
            for (int i = 0; i < SM; ++i)
                acc[i] = mad(ws[i][kk], v, acc[i]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (n < N) {
        const int o = nb * obs + n - nb * P;
#pragma unroll
        for (int i = 0; i < SM; ++i) {
            int m = m0 + i;
            if (m < M) {
                out[o + m * o_ms] = ACT(acc[i] + (has_bias ? bias[m] : 0.0f));
            }
        }
    }
}

// ---- Strided backward_data (stride > 1): the transposed GEMM with divisibility tests, on the
// device's default tiles (its load mapping needs NT % TK == 0 and NT % TN == 0).

#define INSIDE(v, n) ((uint)(v) < (uint)(n))

// Gather helpers (defined below the kernels).
float load_bwd_data(__global const float* gb, int4 t, int bz, int by, int bx, int4 out_dims,
                    int4 stride);

// The shared GEMM main loop. Expects A_AT(m, k), B_AT(k), COL_OK, KBEGIN, KEND and M in scope.
#define GEMM_MAIN_LOOP                                                                        \
    __local float As[TK][TM + 1];                                                             \
    __local float Bs[TK][TN + 1];                                                             \
    float acc[RM][RN];                                                                        \
    for (int i = 0; i < RM; ++i)                                                              \
        for (int j = 0; j < RN; ++j)                                                          \
            acc[i][j] = 0.0f;                                                                 \
    for (int k0 = KBEGIN; k0 < KEND; k0 += TK) {                                              \
        for (int i = 0; i < (TM * TK) / NT; ++i) {                                            \
            int ml = a_m + i * (NT / TK);                                                     \
            int m = m0 + ml;                                                                  \
            int k = k0 + a_kk;                                                                \
            As[a_kk][ml] = (m < M && k < KEND) ? A_AT(m, k) : 0.0f;                           \
        }                                                                                     \
        for (int i = 0; i < (TK * TN) / NT; ++i) {                                            \
            int kk = b_kk + i * (NT / TN);                                                    \
            int k = k0 + kk;                                                                  \
            Bs[kk][b_n] = (COL_OK && k < KEND) ? B_AT(k) : 0.0f;                              \
        }                                                                                     \
        barrier(CLK_LOCAL_MEM_FENCE);                                                         \
        for (int kk = 0; kk < TK; ++kk) {                                                     \
            float a[RM], b[RN];                                                               \
            for (int i = 0; i < RM; ++i)                                                      \
                a[i] = As[kk][ty + i * NTY];                                                  \
            for (int j = 0; j < RN; ++j)                                                      \
                b[j] = Bs[kk][tx + j * NTX];                                                  \
            for (int i = 0; i < RM; ++i)                                                      \
                for (int j = 0; j < RN; ++j)                                                  \
                    acc[i][j] = mad(a[i], b[j], acc[i][j]);                                   \
        }                                                                                     \
        barrier(CLK_LOCAL_MEM_FENCE);                                                         \
    }

#define GEMM_IDS                                                                              \
    const int tx = get_local_id(0), ty = get_local_id(1);                                     \
    const int lid = ty * NTX + tx;                                                            \
    const int n0 = get_group_id(0) * TN, m0 = get_group_id(1) * TM;                          \
    const int a_kk = lid % TK, a_m = lid / TK;                                                \
    const int b_n = lid % TN, b_kk = lid / TN;

// in_dims = (ID, IH, IW, O), out_dims = (OD, OH, OW, P); ktab[k] = (o * P, a*dil_d, b*dil_h,
// e*dil_w) and atab[k] = o*C*KV + kv for k = (o, kv).
__kernel __attribute__((reqd_work_group_size(NTX, NTY, 1)))
void conv_backward_data(__global const float* gy, __global const float* w, __global float* gx,
                        __global const int4* ktab, __global const int* atab, int M, int N,
                        int K, int KV, int4 in_dims, int4 out_dims, int4 stride, int4 pad) {
    GEMM_IDS
    const int P = out_dims.w;
    const int IV = in_dims.x * in_dims.y * in_dims.z;
    const int col = n0 + b_n;
    const bool col_ok = col < N;
    const int nb = col / IV;
    const int v = col - nb * IV;
    const int ihw = in_dims.y * in_dims.z;
    const int iz = v / ihw;
    const int r = v - iz * ihw;
    const int iy = r / in_dims.z;
    const int ix = r - iy * in_dims.z;
    const int bz = iz + pad.x, by = iy + pad.y, bx = ix + pad.z;
    __global const float* gb = gy + (col_ok ? nb * in_dims.w * P : 0);

#define COL_OK col_ok
#define KBEGIN 0
#define KEND K
#define A_AT(m, k) w[atab[k] + (m) * KV]
#define B_AT(k) load_bwd_data(gb, ktab[k], bz, by, bx, out_dims, stride)
    GEMM_MAIN_LOOP
#undef COL_OK
#undef KBEGIN
#undef KEND
#undef A_AT
#undef B_AT

    for (int i = 0; i < RM; ++i) {
        int m = m0 + ty + i * NTY;
        if (m >= M) {
            continue;
        }
        for (int j = 0; j < RN; ++j) {
            int c = n0 + tx + j * NTX;
            if (c < N) {
                int cb = c / IV;
                gx[(cb * M + m) * IV + (c - cb * IV)] = acc[i][j];
            }
        }
    }
}

float load_bwd_data(__global const float* gb, int4 t, int bz, int by, int bx,
                           int4 out_dims, int4 stride) {
    int tz = bz - t.y, ty = by - t.z, tx = bx - t.w;
    if (tz < 0 || ty < 0 || tx < 0) {
        return 0.0f;
    }
    int oz = tz / stride.x, oy = ty / stride.y, ox = tx / stride.z;
    if (oz * stride.x != tz || oy * stride.y != ty || ox * stride.z != tx) {
        return 0.0f;
    }
    if (oz >= out_dims.x || oy >= out_dims.y || ox >= out_dims.z) {
        return 0.0f;
    }
    return gb[t.x + (oz * out_dims.y + oy) * out_dims.z + ox];
}

// out[i] = sum over splits of part[s * n + i].
__kernel void sum_splits(__global const float* part, __global float* out, int n, int splits) {
    int i = get_global_id(0);
    if (i >= n) {
        return;
    }
    float acc = 0.0f;
    for (int s = 0; s < splits; ++s) {
        acc += part[s * n + i];
    }
    out[i] = acc;
}
