"""Optimizer base and SGD (momentum, dampening, nesterov, weight_decay, maximize)."""
from ..compile import live
from ..dtypes import no_grad
from ..tape import TAPE
from ..tensor import Tensor


class Optimizer:
    def __init__(self, params, defaults):
        self.defaults = defaults
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        self.state = {}
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group):
        group = dict(group)
        ps = group["params"]
        group["params"] = [ps] if isinstance(ps, Tensor) else list(ps)
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.zero_()

    def state_dict(self):
        ids = {}
        groups = []
        for g in self.param_groups:
            gd = {k: v for k, v in g.items() if k != "params"}
            gd["params"] = [ids.setdefault(id(p), len(ids)) for p in g["params"]]
            groups.append(gd)
        params = [p for g in self.param_groups for p in g["params"]]
        state = {ids[id(p)]: self.state[p] for p in params if p in self.state}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        params = [p for g in self.param_groups for p in g["params"]]
        for g, gd in zip(self.param_groups, state_dict["param_groups"]):
            g.update({k: v for k, v in gd.items() if k != "params"})
        self.state = {params[i]: s for i, s in state_dict["state"].items()}


class SGD(Optimizer):
    """p -= lr * (g + weight_decay p), with optional (Nesterov) momentum, as torch.optim.SGD."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _structure(self):
        """What step() decides in Python: hyperparameters other than lr, which parameters have
        a .grad and which have momentum buffers (a guard when tapegrad.compile records)."""
        return tuple((tuple(v for k, v in sorted(g.items()) if k not in ("params", "lr")),
                      tuple((p.grad is None, "momentum_buffer" in self.state.get(p, ()))
                            for p in g["params"])) for g in self.param_groups)

    @no_grad()
    def step(self, closure=None):
        if TAPE.rec is not None:
            TAPE.rec.python_guard(f"{type(self).__name__} state", lambda args: self._structure(),
                                  self._structure())
        loss = None
        if closure is not None:
            with __import__("tapegrad").enable_grad():
                loss = closure()
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if g["maximize"]:
                    d = -d
                if g["weight_decay"]:
                    d = d + g["weight_decay"] * p
                if g["momentum"]:
                    st = self.state.setdefault(p, {})
                    buf = st.get("momentum_buffer")
                    if buf is None:
                        buf = st["momentum_buffer"] = d.clone()
                    else:
                        buf.mul_(g["momentum"]).add_(d, alpha=1 - g["dampening"])
                    d = d + g["momentum"] * buf if g["nesterov"] else buf
                p.sub_(d, alpha=live(g["lr"], lambda g=g: g["lr"], "lr"))
        return loss
