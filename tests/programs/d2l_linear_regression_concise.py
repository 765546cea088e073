# Source: d2l-ai/d2l-zh, chapter_linear-networks/linear-regression-concise.md, the PyTorch code
# cells ("Dive into Deep Learning", section 3.3), sample code under the d2l sample-code license
# (MIT-0 style, LICENSE-SAMPLECODE of the d2l repositories).
# Changes: the d2l package is replaced by the helpers it provides (marked "inlined"); the code
# cells are otherwise unchanged; the block at the end is added.
# ruff: noqa: E402, E501, E741, W291, W605   (the copied code is kept as it is)
import types

import numpy as np
import torch
from torch.utils import data


# inlined from d2l/torch.py (section 3.2 defines it with `#@save`)
def synthetic_data(w, b, num_examples):
    """生成 y = Xw + b + 噪声。"""
    X = torch.normal(0, 1, (num_examples, len(w)))
    y = torch.matmul(X, w) + b
    y += torch.normal(0, 0.01, y.shape)
    return X, y.reshape((-1, 1))


d2l = types.SimpleNamespace(
    synthetic_data=synthetic_data, tensor=torch.tensor,
    reshape=lambda x, *args, **kwargs: x.reshape(*args, **kwargs))

true_w = d2l.tensor([2, -3.4])
true_b = 4.2
features, labels = d2l.synthetic_data(true_w, true_b, 1000)


def load_array(data_arrays, batch_size, is_train=True):  #@save
    """构造一个PyTorch数据迭代器"""
    dataset = data.TensorDataset(*data_arrays)
    return data.DataLoader(dataset, batch_size, shuffle=is_train)


batch_size = 10
data_iter = load_array((features, labels), batch_size)

next(iter(data_iter))

# nn是神经网络的缩写
from torch import nn
net = nn.Sequential(nn.Linear(2, 1))

net[0].weight.data.normal_(0, 0.01)
net[0].bias.data.fill_(0)

loss = nn.MSELoss()

trainer = torch.optim.SGD(net.parameters(), lr=0.03)

num_epochs = 3
for epoch in range(num_epochs):
    for X, y in data_iter:
        l = loss(net(X) ,y)
        trainer.zero_grad()
        l.backward()
        trainer.step()
    l = loss(net(features), labels)
    print(f'epoch {epoch + 1}, loss {l:f}')

w = net[0].weight.data
print('w的估计误差：', true_w - d2l.reshape(w, true_w.shape))
b = net[0].bias.data
print('b的估计误差：', true_b - b)

# ---- added for tapegrad's tests (not in the original) ----
import os, sys  # noqa: E401, E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # wherever it is run from
from _checks import report, values  # noqa: E402
# one epoch visits every example once, in batches of 10, in a shuffled order
batches = list(data_iter)
assert len(batches) == 100 and all(bx.shape == (10, 2) and by.shape == (10, 1) for bx, by in batches)
seen = np.concatenate([values(bx) for bx, _ in batches])
assert np.array_equal(np.sort(seen, axis=0), np.sort(values(features), axis=0))
assert not np.array_equal(seen, values(features))
# noise of std 0.01: the least-squares fit is within ~1e-3 of the truth, and SGD lands near it
A = np.hstack([values(features), np.ones((1000, 1))])
ls = np.linalg.lstsq(A, values(labels)[:, 0], rcond=None)[0]
fit = np.append(values(w)[0], values(b))
assert np.abs(ls - [2, -3.4, 4.2]).max() < 5e-3, ls
assert np.abs(fit - ls).max() < 5e-3, (fit, ls)
final_loss = l.item()
assert 5e-5 < final_loss < 2e-4, final_loss          # MSELoss: about sigma^2 = 1e-4
report(final_loss=final_loss, w=fit[:2].tolist(), b=float(fit[2]))
