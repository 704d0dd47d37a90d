// Sums. `sum_partial` is a two-stage parallel tree reduction for full sums (stage 1: each
// work-group sums a grid-strided slice into one partial; stage 2: one work-group sums the
// partials). `sum_axes_group` sums one output per work-group (large reductions), and
// `sum_axes_thread` one output per work-item (short reductions). Kept and reduced index spaces
// are described by (shape, strides) pairs of rank <= 8 after merging adjacent axes.

inline int offset_of(int idx, int rank, const int* shape, const int* stride) {
    int off = 0;
    for (int d = rank - 1; d >= 0; --d) {
        off += (idx % shape[d]) * stride[d];
        idx /= shape[d];
    }
    return off;
}

inline float group_tree_sum(float v, __local float* scratch) {
    int lid = get_local_id(0);
    int n = get_local_size(0);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = n / 2; s > 0; s >>= 1) {
        if (lid < s) {
            scratch[lid] += scratch[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return scratch[0];
}

__kernel void sum_partial(__global const float* x, __global float* partial, int n,
                          __local float* scratch) {
    float acc = 0.0f;
    for (int i = get_global_id(0); i < n; i += get_global_size(0)) {
        acc += x[i];
    }
    float total = group_tree_sum(acc, scratch);
    if (get_local_id(0) == 0) {
        partial[get_group_id(0)] = total;
    }
}

__kernel void sum_axes_thread(__global const float* x, __global float* y, int out_len,
                              int red_len, int krank, int8 kshape, int8 kstride, int rrank,
                              int8 rshape, int8 rstride) {
    int o = get_global_id(0);
    if (o >= out_len) {
        return;
    }
    int ks[8], kt[8], rs[8], rt[8];
    vstore8(kshape, 0, ks);
    vstore8(kstride, 0, kt);
    vstore8(rshape, 0, rs);
    vstore8(rstride, 0, rt);
    int base = offset_of(o, krank, ks, kt);
    float acc = 0.0f;
    for (int r = 0; r < red_len; ++r) {
        acc += x[base + offset_of(r, rrank, rs, rt)];
    }
    y[o] = acc;
}

__kernel void sum_axes_group(__global const float* x, __global float* y, int out_len,
                             int red_len, int krank, int8 kshape, int8 kstride, int rrank,
                             int8 rshape, int8 rstride, __local float* scratch) {
    int o = get_group_id(0);
    int ks[8], kt[8], rs[8], rt[8];
    vstore8(kshape, 0, ks);
    vstore8(kstride, 0, kt);
    vstore8(rshape, 0, rs);
    vstore8(rstride, 0, rt);
    int base = offset_of(o, krank, ks, kt);
    float acc = 0.0f;
    for (int r = get_local_id(0); r < red_len; r += get_local_size(0)) {
        acc += x[base + offset_of(r, rrank, rs, rt)];
    }
    float total = group_tree_sum(acc, scratch);
    if (get_local_id(0) == 0 && o < out_len) {
        y[o] = total;
    }
}
