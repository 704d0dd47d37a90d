// 1-D correlation along the middle axis of [outer, len, inner] with "valid" extent, and its
// adjoint (output length len + taps - 1, y[i] = sum_k taps[k] x[i - k]).

__kernel void filter_axis(__global const float* x, __global const float* taps,
                          __global float* y, int total, int len, int inner, int out_len,
                          int ntaps, int adjoint) {
    int i = get_global_id(0);
    if (i >= total) {
        return;
    }
    int j = i % inner;
    int t = i / inner;
    int pos = t % out_len;
    int o = t / out_len;
    __global const float* xo = x + o * len * inner + j;
    float acc = 0.0f;
    for (int k = 0; k < ntaps; ++k) {
        int src = adjoint ? pos - k : pos + k;
        if (src >= 0 && src < len) {
            acc += taps[k] * xo[src * inner];
        }
    }
    y[i] = acc;
}
