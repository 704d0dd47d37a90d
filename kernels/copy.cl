// Range copy along one axis of tensors viewed as [outer, len, inner] (concat / narrow).

__kernel void copy_axis(__global const float* src, __global float* dst, int total, int run,
                        int src_block, int src_off, int dst_block, int dst_off) {
    int i = get_global_id(0);
    if (i >= total) {
        return;
    }
    int o = i / run;
    int j = i - o * run;
    dst[o * dst_block + dst_off + j] = src[o * src_block + src_off + j];
}
