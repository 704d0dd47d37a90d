// Element-wise pieces of one phasing cycle on the device, mirroring src/phasing/kernels.rs:
// Fourier-magnitude projection, ER/HIO/RAAR real-space updates and Poisson LLK partial sums.
// Complex numbers are interleaved float2; masks are uchar (0 observed, 1 masked, 2 free).

#define OBSERVED 0
#define FREE 2

// Observed pixels get amplitude sqrt(iobs) (or the calculated one clamped to
// sqrt(iobs) +- half_width when half_width > 0), keeping their phase; others keep theirs;
// everything is finally multiplied by scale.
__kernel void fourier_projection(__global float2* psi, __global const float* iobs,
                                 __global const uchar* mask, float scale, float half_width,
                                 uint n) {
    const size_t i = get_global_id(0);
    if (i >= n) return;
    float2 p = psi[i];
    if (mask[i] != OBSERVED) {
        psi[i] = p * scale;
        return;
    }
    const float a = sqrt(fmax(iobs[i], 0.0f));
    const float calc = hypot(p.x, p.y);
    const float target =
        half_width > 0.0f ? clamp(calc, fmax(a - half_width, 0.0f), a + half_width) : a;
    if (calc > 1e-30f) {
        psi[i] = p * (scale * target / calc);
    } else {
        psi[i] = (float2)(scale * target, 0.0f);
    }
}

// algorithm: 0 ER, 1 HIO, 2 RAAR. Inside the support rho <- proj.
__kernel void real_space_update(__global float2* rho, __global const float2* proj,
                                __global const uchar* support, int algorithm, float beta,
                                uint n) {
    const size_t i = get_global_id(0);
    if (i >= n) return;
    const float2 p = proj[i];
    if (support[i] != 0) {
        rho[i] = p;
    } else if (algorithm == 0) {
        rho[i] = (float2)(0.0f, 0.0f);
    } else if (algorithm == 1) {
        rho[i] = rho[i] - p * beta;
    } else {
        rho[i] = p * (1.0f - 2.0f * beta) + rho[i] * beta;
    }
}

__kernel void copy_complex(__global const float2* src, __global float2* dst, uint n) {
    const size_t i = get_global_id(0);
    if (i < n) dst[i] = src[i];
}

// Per-work-group partial sums of the Poisson terms calc - obs + obs ln(obs/calc) with
// calc = |psi|^2: out[4*g + 0] observed sum, +1 observed count, +2 free sum, +3 free count.
// The work-group size must be a power of two; scratch holds 4 floats per work-item.
__kernel void poisson_llk_partial(__global const float2* psi, __global const float* iobs,
                                  __global const uchar* mask, uint n, __global float* out,
                                  __local float4* scratch) {
    const size_t lid = get_local_id(0);
    const size_t lsz = get_local_size(0);
    float4 acc = (float4)(0.0f);
    for (size_t i = get_global_id(0); i < n; i += get_global_size(0)) {
        const uchar m = mask[i];
        if (m != OBSERVED && m != FREE) continue;
        const float2 p = psi[i];
        const float calc = fmax(p.x * p.x + p.y * p.y, 1e-30f);
        const float obs = fmax(iobs[i], 0.0f);
        const float t = obs > 0.0f ? calc - obs + obs * log(obs / calc) : calc;
        if (m == OBSERVED) {
            acc.x += t;
            acc.y += 1.0f;
        } else {
            acc.z += t;
            acc.w += 1.0f;
        }
    }
    scratch[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (size_t s = lsz / 2; s > 0; s >>= 1) {
        if (lid < s) scratch[lid] += scratch[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        const size_t g = get_group_id(0);
        out[4 * g + 0] = scratch[0].x;
        out[4 * g + 1] = scratch[0].y;
        out[4 * g + 2] = scratch[0].z;
        out[4 * g + 3] = scratch[0].w;
    }
}

// out[i] = |rho[i]| (the shrink-wrap input).
__kernel void modulus(__global const float2* rho, __global float* out, uint n) {
    const size_t i = get_global_id(0);
    if (i < n) out[i] = hypot(rho[i].x, rho[i].y);
}
