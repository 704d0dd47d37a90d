// Dropout of ops/dropout: element i is kept when a hash of (seed, i) mapped to [0, 1) is at
// least p, and scaled by `scale` = 1 / (1 - p). The same hash runs on the CPU, so both devices
// drop the same elements.

inline uint dropout_hash(uint x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

__kernel void dropout(__global const float* x, __global float* y, int n, int seed_lo,
                      int seed_hi, float p, float scale) {
    int i = get_global_id(0);
    if (i >= n) return;
    uint s = dropout_hash((uint)seed_lo ^ dropout_hash((uint)seed_hi + 0x9e3779b9U));
    uint h = dropout_hash((uint)i ^ s);
    float u = (float)(h >> 8) * (1.0f / 16777216.0f);
    y[i] = u >= p ? x[i] * scale : 0.0f;
}
