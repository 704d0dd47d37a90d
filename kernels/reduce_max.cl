// Max-reduction of ops/reduce/max.rs along one axis of an array viewed as [outer, len, inner].

__kernel void max_axis(__global const float* x, __global float* y, int outer, int len,
                       int inner) {
    int i = get_global_id(0);
    if (i >= outer * inner) return;
    int o = i / inner;
    int c = i - o * inner;
    __global const float* p = x + (size_t)o * len * inner + c;
    float m = p[0];
    for (int j = 1; j < len; ++j) {
        float v = p[(size_t)j * inner];
        m = v > m ? v : m;
    }
    y[i] = m;
}
