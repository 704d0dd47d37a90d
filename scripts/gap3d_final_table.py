"""Section 6.7 of REPORT.md: the final 3-D gap model (with test-time mirroring) and physics
refinement against every classical fill, on the study sets (seeds 9000+W) and fresh sets
(seeds 9200+W), from the JSON files of `bragg eval3d` in docs/gap3d/final/. Classical rows
come from the *_classical_* files, the model and model+physics rows from *_model_* files,
the control (log-biharmonic + physics) from *_control_* (study) or *_classical_* (fresh)."""
import json, os
def load(p):
    return json.load(open(p)) if os.path.exists(p) and os.path.getsize(p) > 0 else None
D = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'docs', 'gap3d', 'final')
SETS = (
    ('study', 'study_classical_width{w}.json', 'study_model_width{w}.json', 'study_control_width{w}.json'),
    ('fresh', 'fresh_classical_width{w}.json', 'fresh_model_width{w}.json', 'fresh_classical_width{w}.json'),
)
for name, cls_pat, new_pat, ctrl_pat in [tuple([s[0]] + [os.path.join(D, p) for p in s[1:]]) for s in SETS]:
    for w in (3, 6, 9, 12):
        c = load(cls_pat.format(w=w)); n = load(new_pat.format(w=w)); ct = load(ctrl_pat.format(w=w))
        if not (c and n): continue
        ceil = c['ceiling']['mean']; cm = c['methods']
        cl = [k for k in cm if not k.startswith('model') and '+physics' not in k]
        best = max(cl, key=lambda k: cm[k]['pcc_log']['mean']); b = cm[best]['pcc_log']['mean']
        bar = min(0.01, 0.4 * (ceil - b)); nm = n['methods']
        mo = nm['model']['pcc_log']; mp = nm['model+physics']['pcc_log']
        ctrl = ct['methods'].get('log-biharmonic+physics') if ct else None
        print(f"{name} W{w}: ceil {ceil:.4f} best {best} {b:.4f}±{cm[best]['pcc_log']['std']:.4f} bar {b+bar:.4f} | model {mo['mean']:.4f}±{mo['std']:.4f} ({mo['mean']-b:+.4f}) | m+p {mp['mean']:.4f}±{mp['std']:.4f} ({mp['mean']-b:+.4f}) | ctrl {ctrl['pcc_log']['mean'] if ctrl else 0:.4f} | relL2 m {nm['model']['rel_l2']['mean']:.3f} mp {nm['model+physics']['rel_l2']['mean']:.3f} best {cm[best]['rel_l2']['mean']:.3f} | s/vol {nm['model+physics']['seconds']:.1f}")
