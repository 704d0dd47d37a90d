// Nearest-neighbour upsampling by integer factors: forward gathers one work-item per output,
// backward sums each factor block with one work-item per input element.

__kernel void upsample_forward(__global const float* x, __global float* y, int total,
                               int4 in_dims, int4 f) {
    int i = get_global_id(0);
    if (i >= total) {
        return;
    }
    int OW = in_dims.z * f.z, OH = in_dims.y * f.y, OD = in_dims.x * f.x;
    int c = i % OW;
    int t = i / OW;
    int r = t % OH;
    t /= OH;
    int z = t % OD;
    int p = t / OD;
    y[i] = x[((p * in_dims.x + z / f.x) * in_dims.y + r / f.y) * in_dims.z + c / f.z];
}

__kernel void upsample_backward(__global const float* gy, __global float* gx, int total,
                                int4 in_dims, int4 f) {
    int i = get_global_id(0);
    if (i >= total) {
        return;
    }
    int OW = in_dims.z * f.z, OH = in_dims.y * f.y, OD = in_dims.x * f.x;
    int c = i % in_dims.z;
    int t = i / in_dims.z;
    int r = t % in_dims.y;
    t /= in_dims.y;
    int z = t % in_dims.x;
    int p = t / in_dims.x;
    float acc = 0.0f;
    for (int a = 0; a < f.x; ++a) {
        for (int b = 0; b < f.y; ++b) {
            int row = ((p * OD + z * f.x + a) * OH + r * f.y + b) * OW + c * f.z;
            for (int e = 0; e < f.z; ++e) {
                acc += gy[row + e];
            }
        }
    }
    gx[i] = acc;
}
