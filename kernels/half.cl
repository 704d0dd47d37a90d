// f16 -> f32 conversion with vload_half, which OpenCL provides even without cl_khr_fp16.

__kernel void f16_to_f32(__global const half* src, __global float* dst, int n) {
    int i = get_global_id(0);
    if (i < n) {
        dst[i] = vload_half(i, src);
    }
}
