using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>
/// LARS as the official <c>util/lars.py</c> (used by <c>main_linprobe.py</c>): for tensors with more than one dimension the
/// update <c>g + wd p</c> is scaled by the trust ratio <c>eta ||p|| / ||g + wd p||</c> (1 when either norm is 0); biases and
/// norms get plain SGD; then heavy-ball momentum <c>mu = m mu + g</c>, <c>p -= lr mu</c>.
/// </summary>
/// <param name="parameters">The parameters to update.</param>
/// <param name="lr">Initial <see cref="LearningRate"/>.</param>
/// <param name="weightDecay">Weight decay of multi-dimensional tensors (default 0).</param>
/// <param name="momentum">Heavy-ball momentum m (default 0.9).</param>
/// <param name="trustCoefficient">eta of the trust ratio (default 0.001).</param>
public sealed class Lars(IEnumerable<Parameter> parameters, double lr, double weightDecay = 0, double momentum = 0.9, double trustCoefficient = 0.001) : IDisposable, ILoopOptimizer
{
    readonly List<Parameter> parameters = parameters.ToList();
    readonly Dictionary<Parameter, Tensor> buffers = new();

    /// <summary>The lr of the next <see cref="Step"/> (set it from the schedule before each step).</summary>
    public double LearningRate { get; set; } = lr;

    /// <summary>Updates every parameter that has a gradient (under <c>no_grad</c>); momentum buffers start at zero on first use.</summary>
    public void Step()
    {
        using var _ = no_grad();
        // explicit Scalars held to the end of the step: TorchSharp's implicit ones can be finalized mid-call
        using var wd = weightDecay.ToScalar();
        using var m = momentum.ToScalar();
        using var step = (-LearningRate).ToScalar();
        foreach (var p in parameters)
        {
            using var grad = p.grad;   // a new wrapper each call: disposed here, never left to a finalizer mid-call
            if (grad is null) continue;
            using var scope = NewDisposeScope();
            var dp = grad;
            if (p.ndim > 1)
            {
                dp = dp.add(p, wd);
                var paramNorm = p.norm().item<float>();
                var updateNorm = dp.norm().item<float>();
                double q = paramNorm > 0 && updateNorm > 0 ? trustCoefficient * paramNorm / updateNorm : 1.0;
                using var trust = q.ToScalar();
                dp = dp.mul(trust);
            }
            if (!buffers.TryGetValue(p, out var mu))
            {
                mu = zeros_like(p).DetachFromDisposeScope();
                buffers[p] = mu;
            }
            mu.mul_(m).add_(dp, Model.Scalars.One);
            p.add_(mu, step);
        }
    }

    /// <summary>Zeroes the parameters' gradients.</summary>
    public void ZeroGrad()
    {
        foreach (var p in parameters) p.grad?.zero_();
    }

    int ILoopOptimizer.GroupCount => 1;
    void ILoopOptimizer.SetLearningRate(int group, double lr) => LearningRate = lr;
    void ILoopOptimizer.Step() => Step();
    void ILoopOptimizer.ZeroGrad() => ZeroGrad();

    /// <summary>Frees the momentum buffers.</summary>
    public void Dispose()
    {
        foreach (var t in buffers.Values) t.Dispose();
        buffers.Clear();
    }
}
