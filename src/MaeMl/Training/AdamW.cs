using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>
/// AdamW with the update of PyTorch's <c>torch.optim.AdamW</c> (1.13, the official MAE's) and TorchSharp's
/// <see cref="AdamW"/> (same state, same checkpoint bytes: it is a subclass), but no temporary <see cref="Scalar"/>:
/// TorchSharp 0.107 hands the native handle of implicit <c>Scalar</c>s (every <c>double</c> coefficient) to LibTorch without
/// keeping the object alive, so a collection on another thread can free one mid-call ("Expected false to be true").
/// Here every coefficient is an explicit <see cref="Scalar"/> held in a local until the step ends (constants are cached
/// per group), and the denominator is built in place. Per parameter, in order:
/// <c>p *= 1 - lr wd</c>; <c>m = b1 m + (1 - b1) g</c>; <c>v = b2 v + (1 - b2) g^2</c>;
/// <c>p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)</c>.
/// </summary>
public sealed class AdamW : TorchSharp.Modules.AdamW
{
    sealed record GroupScalars(Scalar Beta1, Scalar OneMinusBeta1, Scalar Beta2, Scalar OneMinusBeta2, Scalar Eps) : IDisposable
    {
        public void Dispose() { Beta1.Dispose(); OneMinusBeta1.Dispose(); Beta2.Dispose(); OneMinusBeta2.Dispose(); Eps.Dispose(); }
    }

    readonly Dictionary<TorchSharp.Modules.ParamGroup, (double B1, double B2, double Eps, GroupScalars Scalars)> constants = new();

    /// <summary>Same arguments as <see cref="AdamW"/> with parameter groups (amsgrad and maximize are not supported).</summary>
    public AdamW(IEnumerable<ParamGroup> groups, double lr, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0)
        : base(groups, lr, beta1, beta2, eps, weightDecay)
    {
        foreach (var g in _parameter_groups)
            if (((Options)g.Options).amsgrad == true || ((Options)g.Options).maximize == true)
                throw new ArgumentException("MaeMl.Training.AdamW supports neither amsgrad nor maximize");
    }

    GroupScalars Constants(TorchSharp.Modules.ParamGroup group, Options o)
    {
        double b1 = o.beta1!.Value, b2 = o.beta2!.Value, eps = o.eps!.Value;
        if (constants.TryGetValue(group, out var c) && c.B1 == b1 && c.B2 == b2 && c.Eps == eps) return c.Scalars;
        c.Scalars?.Dispose();
        var scalars = new GroupScalars(b1.ToScalar(), (1 - b1).ToScalar(), b2.ToScalar(), (1 - b2).ToScalar(), eps.ToScalar());
        constants[group] = (b1, b2, eps, scalars);
        return scalars;
    }

    /// <inheritdoc/>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        Tensor? loss = null;
        if (closure is not null)
            using (enable_grad()) loss = closure();
        using var _ = no_grad();
        foreach (var group in _parameter_groups)
        {
            var o = (Options)group.Options;
            double lr = o.LearningRate!.Value, wd = o.weight_decay!.Value, b1 = o.beta1!.Value, b2 = o.beta2!.Value;
            var k = Constants(group, o);
            using var decay = (1 - lr * wd).ToScalar();
            long lastStep = -1;
            Scalar? sqrtBc2 = null, stepSize = null;
            try
            {
                foreach (var p in group.Parameters)
                {
                    // p.grad is a new wrapper each call: disposed at the end of the iteration, so it is alive (and not left to a
                    // finalizer) while LibTorch uses it, also when the caller has no dispose scope
                    using var grad = p.grad;
                    if (grad is null) continue;
                    var state = (State)_state[p.Handle];
                    state.step += 1;
                    if (state.step != lastStep)
                    {
                        sqrtBc2?.Dispose(); stepSize?.Dispose();
                        sqrtBc2 = Math.Sqrt(1 - Math.Pow(b2, state.step)).ToScalar();
                        stepSize = (-lr / (1 - Math.Pow(b1, state.step))).ToScalar();
                        lastStep = state.step;
                    }
                    if (wd != 0) p.mul_(decay);
                    state.exp_avg.mul_(k.Beta1).add_(grad, k.OneMinusBeta1);
                    state.exp_avg_sq.mul_(k.Beta2).addcmul_(grad, grad, k.OneMinusBeta2);
                    using (var denom = state.exp_avg_sq.sqrt())
                    {
                        denom.div_(sqrtBc2!).add_(k.Eps, Model.Scalars.One);
                        p.addcdiv_(state.exp_avg, denom, stepSize!);
                    }
                }
            }
            finally
            {
                sqrtBc2?.Dispose();
                stepSize?.Dispose();
            }
            GC.KeepAlive(k);
        }
        return loss!;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) foreach (var c in constants.Values) c.Scalars.Dispose();
        constants.Clear();
        base.Dispose(disposing);
    }
}
