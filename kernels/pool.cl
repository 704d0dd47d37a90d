// Max-pooling with window == stride. The forward writes the value and the argmax slot (row-major
// index inside the window, as float); NaN wins so that it propagates. The backward runs one
// work-item per input element (windows do not overlap), so every input is written exactly once.

__kernel void maxpool_forward(__global const float* x, __global float* y, __global float* arg,
                              int total, int4 in_dims, int4 out_dims, int4 win) {
    int i = get_global_id(0);
    if (i >= total) {
        return;
    }
    int ow = i % out_dims.z;
    int t = i / out_dims.z;
    int oh = t % out_dims.y;
    t /= out_dims.y;
    int od = t % out_dims.x;
    int p = t / out_dims.x;
    __global const float* xp = x + p * (in_dims.x * in_dims.y * in_dims.z);
    float best = -INFINITY;
    int slot = 0, s = 0;
    for (int a = 0; a < win.x; ++a) {
        for (int b = 0; b < win.y; ++b) {
            int row = ((od * win.x + a) * in_dims.y + oh * win.y + b) * in_dims.z + ow * win.z;
            for (int e = 0; e < win.z; ++e) {
                float v = xp[row + e];
                if (v > best || (isnan(v) && !isnan(best))) {
                    best = v;
                    slot = s;
                }
                ++s;
            }
        }
    }
    y[i] = best;
    arg[i] = (float)slot;
}

__kernel void maxpool_backward(__global const float* gy, __global const float* arg,
                               __global float* gx, int total, int4 in_dims, int4 out_dims,
                               int4 win) {
    int i = get_global_id(0);
    if (i >= total) {
        return;
    }
    int iw = i % in_dims.z;
    int t = i / in_dims.z;
    int ih = t % in_dims.y;
    t /= in_dims.y;
    int id = t % in_dims.x;
    int p = t / in_dims.x;
    int od = id / win.x, oh = ih / win.y, ow = iw / win.z;
    float g = 0.0f;
    if (od < out_dims.x && oh < out_dims.y && ow < out_dims.z) {
        int slot = ((id - od * win.x) * win.y + (ih - oh * win.y)) * win.z + (iw - ow * win.z);
        int o = ((p * out_dims.x + od) * out_dims.y + oh) * out_dims.z + ow;
        if ((int)arg[o] == slot) {
            g = gy[o];
        }
    }
    gx[i] = g;
}
