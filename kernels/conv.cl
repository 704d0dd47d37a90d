// Convolutions (cross-correlation, NCDHW, weights [O, C, kD, kH, kW], 2-D = depth 1) as tiled
// implicit GEMMs. Each work-group computes a TM x TN tile of C = A * B, stepping through K in
// slices of TK that are staged in local memory; each work-item accumulates an RM x RN register
// block (rows ty + i*TM/RM, columns tx + j*TN/RN, so neighbouring work-items touch neighbouring
// addresses). B is never materialised: its elements are gathered on the fly ("implicit im2col")
// with per-k offset tables computed on the host.
//
//   forward:          M = O, N = batch * output voxels, K = C * kernel volume
//   backward_data:    M = C, N = batch * input voxels,  K = O * kernel volume (the transposed
//                     GEMM: an input voxel gathers the outputs whose window covers it, honouring
//                     stride divisibility)
//   backward_weight:  M = O, N = C * kernel volume,     K = batch * output voxels, split over
//                     the third grid dimension (split-K) and summed by `sum_splits`.
//
// TM, TN, TK, RM, RN are set per device by the host (-D options).

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
#define NTX (TN / RN)
#define NTY (TM / RM)
#define NT (NTX * NTY)

#define INSIDE(v, n) ((uint)(v) < (uint)(n))

// Gather helpers (defined below the kernels).
float load_fwd(__global const float* xb, int4 t, int bz, int by, int bx, int4 in_dims);
float load_bwd_data(__global const float* gb, int4 t, int bz, int by, int bx, int4 out_dims,
                    int4 stride);
float load_bwd_w_a(__global const float* gy, int m, int k, int M, int P);
float load_bwd_w_b(__global const float* x, int4 t, int k, int CIV, int4 in_dims, int4 out_dims,
                   int4 stride, int4 pad);

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

// in_dims = (ID, IH, IW, C), out_dims = (OD, OH, OW, P = OD*OH*OW);
// ktab[k] = (c * ID*IH*IW, a*dil_d, b*dil_h, e*dil_w) for k = (c, a, b, e).
__kernel __attribute__((reqd_work_group_size(NTX, NTY, 1)))
void conv_forward(__global const float* x, __global const float* w,
                  __global const float* bias, __global float* y,
                  __global const int4* ktab, int has_bias, int M, int N, int K,
                  int4 in_dims, int4 out_dims, int4 stride, int4 pad) {
    GEMM_IDS
    const int P = out_dims.w;
    const int IV = in_dims.x * in_dims.y * in_dims.z;
    const int col = n0 + b_n;
    const bool col_ok = col < N;
    const int nb = col / P;
    const int p = col - nb * P;
    const int ohw = out_dims.y * out_dims.z;
    const int oz = p / ohw;
    const int r = p - oz * ohw;
    const int oy = r / out_dims.z;
    const int ox = r - oy * out_dims.z;
    const int bz = oz * stride.x - pad.x, by = oy * stride.y - pad.y, bx = ox * stride.z - pad.z;
    __global const float* xb = x + (col_ok ? nb * in_dims.w * IV : 0);

#define COL_OK col_ok
#define KBEGIN 0
#define KEND K
#define A_AT(m, k) w[(m) * K + (k)]
#define B_AT(k) load_fwd(xb, ktab[k], bz, by, bx, in_dims)
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
        float b0 = has_bias ? bias[m] : 0.0f;
        for (int j = 0; j < RN; ++j) {
            int c = n0 + tx + j * NTX;
            if (c < N) {
                int cb = c / P;
                y[(cb * M + m) * P + (c - cb * P)] = acc[i][j] + b0;
            }
        }
    }
}

float load_fwd(__global const float* xb, int4 t, int bz, int by, int bx, int4 in_dims) {
    int z = bz + t.y, yy = by + t.z, xx = bx + t.w;
    return (INSIDE(z, in_dims.x) && INSIDE(yy, in_dims.y) && INSIDE(xx, in_dims.z))
               ? xb[t.x + (z * in_dims.y + yy) * in_dims.z + xx]
               : 0.0f;
}

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

// in_dims = (ID, IH, IW, C), out_dims = (OD, OH, OW, P); ktab[col] = (c * IV, a*dil_d, b*dil_h,
// e*dil_w) for the weight column col = (c, a, b, e). Writes split `get_group_id(2)` of the
// partial sums to out[split][M][N].
__kernel __attribute__((reqd_work_group_size(NTX, NTY, 1)))
void conv_backward_weight(__global const float* x, __global const float* gy,
                          __global float* out, __global const int4* ktab, int M, int N, int K,
                          int kchunk, int4 in_dims, int4 out_dims, int4 stride, int4 pad) {
    GEMM_IDS
    const int P = out_dims.w;
    const int IV = in_dims.x * in_dims.y * in_dims.z;
    const int col = n0 + b_n;
    const bool col_ok = col < N;
    const int4 t = col_ok ? ktab[col] : (int4)(0, 0, 0, 0);
    const int split = get_group_id(2);
    const int kbegin = split * kchunk;
    const int kend = min(kbegin + kchunk, K);
    const int CIV = in_dims.w * IV;

#define COL_OK col_ok
#define KBEGIN kbegin
#define KEND kend
#define A_AT(m, k) load_bwd_w_a(gy, m, k, M, P)
#define B_AT(k) load_bwd_w_b(x, t, k, CIV, in_dims, out_dims, stride, pad)
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
                out[(split * M + m) * N + c] = acc[i][j];
            }
        }
    }
}

float load_bwd_w_a(__global const float* gy, int m, int k, int M, int P) {
    int nb = k / P;
    return gy[(nb * M + m) * P + (k - nb * P)];
}

float load_bwd_w_b(__global const float* x, int4 t, int k, int CIV, int4 in_dims,
                          int4 out_dims, int4 stride, int4 pad) {
    int P = out_dims.w;
    int nb = k / P;
    int p = k - nb * P;
    int ohw = out_dims.y * out_dims.z;
    int oz = p / ohw;
    int r = p - oz * ohw;
    int oy = r / out_dims.z;
    int ox = r - oy * out_dims.z;
    int z = oz * stride.x - pad.x + t.y;
    int yy = oy * stride.y - pad.y + t.z;
    int xx = ox * stride.z - pad.z + t.w;
    return (INSIDE(z, in_dims.x) && INSIDE(yy, in_dims.y) && INSIDE(xx, in_dims.z))
               ? x[nb * CIV + t.x + (z * in_dims.y + yy) * in_dims.z + xx]
               : 0.0f;
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
