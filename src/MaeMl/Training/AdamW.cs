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
/// <c>p *= 1 - lr wd</c>; <c>m = lerp(m, g, 1 - b1)</c> (PyTorch 2's form of <c>b1 m + (1 - b1) g</c>); <c>v = b2 v + (1 - b2) g^2</c>;
/// <c>p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)</c>, computed as
/// <c>p -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps sqrt(1 - b2^t))</c>: the same value (to float32 rounding) in 7 passes over
/// the parameter's memory instead of 9, which is what a step costs at ViT-L (the update is bound by memory bandwidth).
/// Contiguous float32 CPU parameters (all of them in MaeMl's training) take <see cref="FusedAdamWCpu"/> instead: the same update
/// in one pass over p, g, m and v (7 array passes where the LibTorch kernels above make 18); other devices and types take the kernels.
/// </summary>
public sealed class AdamW : TorchSharp.Modules.AdamW
{
    sealed record GroupScalars(double OneMinusBeta1Value, Scalar Beta2, Scalar OneMinusBeta2) : IDisposable
    {
        Tensor? oneMinusBeta1;

        /// <summary>1 - b1 as the 0-d float32 tensor <c>lerp_</c> takes as its weight (TorchSharp binds no Scalar overload), on
        /// <paramref name="like"/>'s device, kept outside any dispose scope.</summary>
        public Tensor OneMinusBeta1(Tensor like)
        {
            // compared by type and index: a Device is a new object on every call, so comparing those would rebuild the tensor every step
            if (oneMinusBeta1 is not null && oneMinusBeta1.device_type == like.device_type && oneMinusBeta1.device_index == like.device_index) return oneMinusBeta1;
            oneMinusBeta1?.Dispose();
            oneMinusBeta1 = torch.tensor((float)OneMinusBeta1Value, device: like.device).DetachFromDisposeScope();
            return oneMinusBeta1;
        }

        public void Dispose() { oneMinusBeta1?.Dispose(); Beta2.Dispose(); OneMinusBeta2.Dispose(); }
    }

    readonly Dictionary<TorchSharp.Modules.ParamGroup, (double B1, double B2, double Eps, GroupScalars Scalars)> constants = new();

    /// <summary>Whether contiguous float32 CPU parameters take the one-pass update (default: on, unless the environment sets
    /// <c>MAEML_FUSED_ADAMW=0</c>); off, every parameter takes LibTorch's kernels. Both compute the same update (to float32 rounding).</summary>
    public bool FusedCpu { get; set; } = FusedAdamWCpu.EnabledByEnvironment;

    /// <summary>Parameter updates that took <see cref="FusedAdamWCpu"/> so far.</summary>
    internal long FusedUpdates { get; private set; }

    /// <summary>A bfloat16 working copy whose pending gradients the step reads in place of the master gradients, writing the updated
    /// weights back into it (set by <see cref="BFloat16MasterWeights{TModel}.FuseInto"/>).</summary>
    internal IBFloat16WorkingCopy? WorkingCopy { get; set; }

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
        var scalars = new GroupScalars(1 - b1, b2.ToScalar(), (1 - b2).ToScalar());
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
        bool fromWorkingCopy = WorkingCopy is { GradientsPending: true };
        foreach (var group in _parameter_groups)
        {
            var o = (Options)group.Options;
            double lr = o.LearningRate!.Value, wd = o.weight_decay!.Value, b1 = o.beta1!.Value, b2 = o.beta2!.Value, eps = o.eps!.Value;
            var k = Constants(group, o);
            using var decay = (1 - lr * wd).ToScalar();
            long lastStep = -1;
            Scalar? epsScaled = null, stepSize = null;
            float epsScaledValue = 0, stepSizeValue = 0;
            try
            {
                foreach (var p in group.Parameters)
                {
                    // the working copy's pending bfloat16 gradient, when there is one, is this parameter's gradient
                    var work = fromWorkingCopy ? WorkingCopy!.WorkOf(p) : null;
                    // p.grad is a new wrapper each call: disposed at the end of the iteration, so it is alive (and not left to a
                    // finalizer) while LibTorch uses it, also when the caller has no dispose scope
                    using var workGrad = work?.grad;
                    if (work is not null && workGrad is null) continue;
                    var state = (State)_state[p.Handle];
                    bool fusedMixed = work is not null && FusedCpu && FusedAdamWCpu.AppliesMixed(p, workGrad!, state.exp_avg, state.exp_avg_sq, work);
                    using var grad = work is null ? p.grad : fusedMixed ? null : workGrad!.to_type(ScalarType.Float32).DetachFromDisposeScope();
                    if (grad is null && !fusedMixed) continue;
                    state.step += 1;
                    if (state.step != lastStep)
                    {
                        epsScaled?.Dispose(); stepSize?.Dispose();
                        double sqrtBc2 = Math.Sqrt(1 - Math.Pow(b2, state.step));
                        double epsValue = eps * sqrtBc2, stepValue = -lr * sqrtBc2 / (1 - Math.Pow(b1, state.step));
                        (epsScaledValue, stepSizeValue) = ((float)epsValue, (float)stepValue);
                        epsScaled = epsValue.ToScalar();
                        stepSize = stepValue.ToScalar();
                        lastStep = state.step;
                    }
                    if (fusedMixed)
                    {
                        FusedAdamWCpu.StepMixed(p, workGrad!, state.exp_avg, state.exp_avg_sq, work!, (float)(1 - lr * wd), (float)(1 - b1), (float)b2, (float)(1 - b2), epsScaledValue, stepSizeValue);
                        FusedUpdates++;
                        continue;
                    }
                    if (FusedCpu && FusedAdamWCpu.Applies(p, grad!, state.exp_avg, state.exp_avg_sq))
                    {
                        FusedAdamWCpu.Step(p, grad!, state.exp_avg, state.exp_avg_sq, (float)(1 - lr * wd), (float)(1 - b1), (float)b2, (float)(1 - b2), epsScaledValue, stepSizeValue);
                        FusedUpdates++;
                    }
                    else
                    {
                        if (wd != 0) p.mul_(decay);
                        var lerped = state.exp_avg.lerp_(grad!, k.OneMinusBeta1(p));
                        if (!ReferenceEquals(lerped, state.exp_avg)) lerped.Dispose();   // a second wrapper of the same tensor in some TorchSharp versions
                        state.exp_avg_sq.mul_(k.Beta2).addcmul_(grad!, grad!, k.OneMinusBeta2);
                        using (var denom = state.exp_avg_sq.sqrt())
                        {
                            denom.add_(epsScaled!, Model.Scalars.One);
                            p.addcdiv_(state.exp_avg, denom, stepSize!);
                        }
                    }
                    if (work is not null) { work.copy_(p); workGrad!.zero_(); }   // what the fused kernel does in its pass
                }
            }
            finally
            {
                epsScaled?.Dispose();
                stepSize?.Dispose();
            }
            GC.KeepAlive(k);
        }
        WorkingCopy?.StepDone(wroteWorkingCopy: fromWorkingCopy);
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
