"""Compare the validation carve (mlbench.data.build.iterative_stratification) with scikit-multilearn-ng's on Reuters: time and labels left out of valid."""
import time, numpy as np
from mlbench.data.tasks import get_task
from mlbench.data.build import iterative_stratification
t = get_task("reuters")
docs_train = list(zip(t.train.ids, [tuple(t.labels[j] for j in s) for s in t.train.label_seqs])) + \
             list(zip(t.valid.ids, [tuple(t.labels[j] for j in s) for s in t.valid.label_seqs]))
labsets = [l for _, l in docs_train]
Y = np.zeros((len(labsets), t.n_labels), dtype=int)
idx = {l: j for j, l in enumerate(t.labels)}
for i, ls in enumerate(labsets):
    for l in ls: Y[i, idx[l]] = 1
def report(name, mask, secs):
    cnt = Y.sum(0); inval = Y[mask].sum(0)
    missing = int(((cnt >= 2) & (inval == 0)).sum())
    worst = int(cnt[(cnt >= 2) & (inval == 0)].max()) if missing else 0
    print(f"{name}: {secs:.2f}s valid={mask.sum()} labels(>=2 docs) absent from valid={missing} (most train docs of such a label: {worst})")
t0 = time.time(); m = iterative_stratification(labsets, 0.1, np.random.default_rng(0)); report("mlbench", m, time.time() - t0)
from skmultilearn.model_selection import IterativeStratification
for order in (1, 2):
    t0 = time.time()
    st = IterativeStratification(n_splits=2, order=order, sample_distribution_per_fold=[0.1, 0.9], random_state=0, shuffle=True)
    tr, te = next(st.split(np.zeros((len(Y), 1)), Y))
    mask = np.zeros(len(Y), bool); mask[tr] = True  # the smaller fold
    if mask.sum() > len(Y) / 2: mask = ~mask
    report(f"skmultilearn order={order}", mask, time.time() - t0)
