# Source: d2l-ai/d2l-zh, chapter_linear-networks/linear-regression-scratch.md, the PyTorch code
# cells ("Dive into Deep Learning", section 3.2), sample code under the d2l sample-code license
# (MIT-0 style, LICENSE-SAMPLECODE of the d2l repositories).
# Changes: the plotting cell is left out and the d2l package is replaced by the helpers it
# provides (marked "inlined"); the code cells are otherwise unchanged; the block at the end is
# added.
# ruff: noqa: E402, E501, E741, W291, W605   (the copied code is kept as it is)
import types

import torch
import random

# inlined from d2l/torch.py: the aliases these cells call
d2l = types.SimpleNamespace(
    normal=torch.normal, matmul=torch.matmul, tensor=torch.tensor,
    reshape=lambda x, *args, **kwargs: x.reshape(*args, **kwargs))


def synthetic_data(w, b, num_examples):  #@save
    """生成 y = Xw + b + 噪声。"""
    X = d2l.normal(0, 1, (num_examples, len(w)))
    y = d2l.matmul(X, w) + b
    y += d2l.normal(0, 0.01, y.shape)
    return X, d2l.reshape(y, (-1, 1))


true_w = d2l.tensor([2, -3.4])
true_b = 4.2
features, labels = synthetic_data(true_w, true_b, 1000)

print('features:', features[0],'\nlabel:', labels[0])


def data_iter(batch_size, features, labels):
    num_examples = len(features)
    indices = list(range(num_examples))
    # 这些样本是随机读取的，没有特定的顺序
    random.shuffle(indices)
    for i in range(0, num_examples, batch_size):
        batch_indices = d2l.tensor(
            indices[i: min(i + batch_size, num_examples)])
        yield features[batch_indices], labels[batch_indices]


batch_size = 10

for X, y in data_iter(batch_size, features, labels):
    print(X, '\n', y)
    break

w = torch.normal(0, 0.01, size=(2,1), requires_grad=True)
b = torch.zeros(1, requires_grad=True)


def linreg(X, w, b):  #@save
    """线性回归模型。"""
    return d2l.matmul(X, w) + b


def squared_loss(y_hat, y):  #@save
    """均方损失。"""
    return (y_hat - d2l.reshape(y, y_hat.shape)) ** 2 / 2


def sgd(params, lr, batch_size):  #@save
    """小批量随机梯度下降。"""
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


lr = 0.03
num_epochs = 3
net = linreg
loss = squared_loss

for epoch in range(num_epochs):
    for X, y in data_iter(batch_size, features, labels):
        l = loss(net(X, w, b), y)  # `X`和`y`的小批量损失
        # 因为`l`形状是(`batch_size`, 1)，而不是一个标量。`l`中的所有元素被加到一起，
        # 并以此计算关于[`w`, `b`]的梯度
        l.sum().backward()
        sgd([w, b], lr, batch_size)  # 使用参数的梯度更新参数
    with torch.no_grad():
        train_l = loss(net(features, w, b), labels)
        print(f'epoch {epoch + 1}, loss {float(train_l.mean()):f}')

print(f'w的估计误差: {true_w - d2l.reshape(w, true_w.shape)}')
print(f'b的估计误差: {true_b - b}')

# ---- added for tapegrad's tests (not in the original) ----
import os, sys  # noqa: E401, E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # wherever it is run from
import numpy as np  # noqa: E402
from _checks import report, values  # noqa: E402
# the last minibatch and the data: shapes and the row gather with an index tensor
assert X.shape == (10, 2) and y.shape == (10, 1) and features.shape == (1000, 2)
idx = d2l.tensor([3, 1, 4, 1])
assert np.array_equal(values(features[idx]), values(features)[[3, 1, 4, 1]])
# noise of std 0.01: the least-squares fit is within ~1e-3 of the truth, and SGD lands near it
A = np.hstack([values(features), np.ones((1000, 1))])
ls = np.linalg.lstsq(A, values(labels)[:, 0], rcond=None)[0]
fit = np.append(values(w)[:, 0], values(b))
assert np.abs(ls - [2, -3.4, 4.2]).max() < 5e-3, ls
assert np.abs(fit - ls).max() < 5e-3, (fit, ls)
final_loss = float(train_l.mean())
assert 2e-5 < final_loss < 1e-4, final_loss          # about sigma^2 / 2 = 5e-5
assert w.grad.abs().max().item() == 0 and b.grad.abs().max().item() == 0
report(final_loss=final_loss, w=fit[:2].tolist(), b=float(fit[2]))
