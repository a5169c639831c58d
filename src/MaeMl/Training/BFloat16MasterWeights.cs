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
internal sealed class BFloat16MasterWeights<TModel> : IBFloat16WorkingCopy, IDisposable where TModel : nn.Module
{
    readonly List<(Parameter Master, Parameter Work)> trainable = new();
    Dictionary<IntPtr, Parameter>? workOf;   // master handle -> working copy, once fused into an optimizer
    bool pending;      // the last backward's gradients are still in the working copy, for the fused optimizer step to read
    bool workFresh;    // the fused step wrote the working copy: the next pull has nothing to copy
    bool masterHasGradients;   // gradients were added to the master's since the last step: the step must read those, not the copy's

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

    /// <summary>
    /// Lets <paramref name="optimizer"/> take the copies into its step (<see cref="AdamW.WorkingCopy"/>): after a single backward the
    /// gradients stay in the working copy, the step reads them there, zeroes them, and writes the updated weights into the working
    /// copy as it goes (<see cref="FusedAdamWCpu.StepMixed"/> on the CPU), so <see cref="PushGradients"/> and the next
    /// <see cref="PullWeights"/> copy nothing. Same numbers as without it, bit for bit. Gradient accumulation still works: a second
    /// forward first moves the pending gradients into the float32 master gradients, as <see cref="PushGradients"/> always did. Not for
    /// runs that read the master gradients before the step (gradient clipping).
    /// </summary>
    public void FuseInto(AdamW optimizer)
    {
        workOf = trainable.ToDictionary(t => t.Master.Handle, t => t.Work);
        optimizer.WorkingCopy = this;
    }

    bool IBFloat16WorkingCopy.GradientsPending => pending;

    Parameter? IBFloat16WorkingCopy.WorkOf(Parameter master) => workOf is not null && workOf.TryGetValue(master.Handle, out var w) ? w : null;

    void IBFloat16WorkingCopy.StepDone(bool wroteWorkingCopy) { pending = false; masterHasGradients = false; workFresh = wroteWorkingCopy; }

    /// <summary>Copies the master weights into the working copy (call before forward); with a fused optimizer, first moves gradients
    /// no step consumed into the master gradients, and copies nothing right after a fused step (it wrote the copy).</summary>
    public void PullWeights()
    {
        if (pending) { pending = false; Push(); }
        if (workFresh) { workFresh = false; return; }
        using var _ = no_grad();
        foreach (var (master, work) in trainable) work.copy_(master);
    }

    /// <summary>Adds the working copy's gradients to the master gradients in float32 and clears them (call after backward); with a fused
    /// optimizer the gradients stay where they are until its step (or the next forward) takes them.</summary>
    public void PushGradients()
    {
        if (workOf is not null && !pending && !masterHasGradients) { pending = true; return; }
        Push();
    }

    void Push()
    {
        masterHasGradients = true;
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

/// <summary>What <see cref="AdamW"/> needs of a <see cref="BFloat16MasterWeights{TModel}"/> fused into it.</summary>
internal interface IBFloat16WorkingCopy
{
    /// <summary>The last backward's gradients are in the working copy, not yet in the master gradients.</summary>
    bool GradientsPending { get; }

    /// <summary>The working copy of <paramref name="master"/> (null for a parameter it does not mirror).</summary>
    Parameter? WorkOf(Parameter master);

    /// <summary>The optimizer stepped: it consumed the pending gradients and wrote every updated weight into the working copy
    /// (<paramref name="wroteWorkingCopy"/>), or it read the master gradients (none were pending) and the copy must be pulled.</summary>
    void StepDone(bool wroteWorkingCopy);
}
