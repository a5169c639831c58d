using MaeMl.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>
/// Mixed precision without autocast (TorchSharp has none): a bfloat16 working copy of the model runs forward and
/// backward, the float32 master model keeps the weights the optimizer updates. Before each forward the master weights are
/// copied into the working copy; after each backward its gradients are added, in float32, to the master gradients.
/// The loss itself is computed in float32 (see <see cref="MaskedAutoencoderViT.Forward"/>; the fine-tuning task casts the logits).
/// Used by MAE pretraining and by classifier fine-tuning (<typeparamref name="TModel"/>: the model type, whose working copy is
/// built by the given factory with the master's configuration).
/// </summary>
internal sealed class BFloat16MasterWeights<TModel> : IDisposable where TModel : nn.Module
{
    readonly List<(Parameter Master, Parameter Work)> trainable = new();

    /// <summary>The bfloat16 working copy: forward and backward run on it, the optimizer never sees it.</summary>
    public TModel Work { get; }

    /// <summary>A bfloat16 copy of <paramref name="master"/> holding its current weights, on the master's device wherever
    /// <paramref name="createWork"/> builds it; <paramref name="master"/>'s trainable parameters are the ones kept in step (the fixed
    /// position tables are copied once).</summary>
    public BFloat16MasterWeights(TModel master, Func<TModel> createWork)
    {
        Work = createWork();
        Work.to(TrainingDevice.Of(master));
        Work.to(ScalarType.BFloat16);
        var work = Work.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var _ = no_grad();
        foreach (var (name, p) in master.named_parameters())
        {
            work[name].copy_(p);
            if (p.requires_grad) trainable.Add((p, work[name]));
        }
    }

    /// <summary>Copies the master weights into the working copy (call before forward).</summary>
    public void PullWeights()
    {
        using var _ = no_grad();
        foreach (var (master, work) in trainable) work.copy_(master);
    }

    /// <summary>Adds the working copy's gradients to the master gradients in float32 and clears them (call after backward).</summary>
    public void PushGradients()
    {
        using var _ = no_grad();
        foreach (var (master, work) in trainable)
        {
            using var g = work.grad;   // getters return new wrappers: disposed here, never left to a finalizer mid-call
            if (g is null) continue;
            using var mg = master.grad;
            if (mg is null) { using var copy = g.to_type(ScalarType.Float32); master.grad = copy; }
            else mg.add_(g, Model.Scalars.One);
            g.zero_();
        }
    }

    /// <summary>Disposes the working copy (the master model is the caller's).</summary>
    public void Dispose() => Work.Dispose();
}
