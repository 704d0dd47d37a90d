// Layout ops of ops/layout: axis permutation of a row-major tensor up to rank 8. `shape` is the
// output shape, `src_strides` the input stride of each output axis (unused axes: size 1).

__kernel void permute(__global const float* x, __global float* y, int n, int rank,
                      int8 shape, int8 src_strides) {
    int i = get_global_id(0);
    if (i >= n) return;
    int s[8] = {shape.s0, shape.s1, shape.s2, shape.s3, shape.s4, shape.s5, shape.s6, shape.s7};
    int t[8] = {src_strides.s0, src_strides.s1, src_strides.s2, src_strides.s3,
                src_strides.s4, src_strides.s5, src_strides.s6, src_strides.s7};
    int rest = i;
    int src = 0;
    for (int d = rank - 1; d >= 0; --d) {
        int k = rest % s[d];
        rest /= s[d];
        src += k * t[d];
    }
    y[i] = x[src];
}
