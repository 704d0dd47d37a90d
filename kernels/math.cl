// Element-wise ops of ops/math (pow, expm1, maximum, minimum, step, comparisons, where, atan2),
// selected by the op code of MathOp::code(); unary and binary ops get their first input again
// for the unused operands. Run through the custom-op machinery (ops/custom).

inline float math_apply(int op, float a, float b, float c, float p) {
    switch (op) {
    case 0: return pow(a, p);
    case 1: return expm1(a);
    case 2: return a >= b ? a : b;
    case 3: return a <= b ? a : b;
    case 4: return a > 0.0f ? 1.0f : 0.0f;
    case 5: return a > b ? 1.0f : 0.0f;
    case 6: return a >= b ? 1.0f : 0.0f;
    case 7: return a < b ? 1.0f : 0.0f;
    case 8: return a <= b ? 1.0f : 0.0f;
    case 9: return a == b ? 1.0f : 0.0f;
    case 10: return a != 0.0f ? b : c;
    case 11: return atan2(a, b);
    default: return a;
    }
}

__kernel void math_map(__global const float* a, __global const float* b,
                       __global const float* c, __global float* y, int n, int op, float p) {
    int i = get_global_id(0);
    if (i >= n) return;
    y[i] = math_apply(op, a[i], b[i], c[i], p);
}
