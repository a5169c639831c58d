using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>timm's <c>SoftTargetCrossEntropy</c>: mean over the batch of <c>sum(-target * log_softmax(logits))</c>; with
/// smoothed one-hot targets it equals <c>LabelSmoothingCrossEntropy</c>.</summary>
internal static class SoftTargetCrossEntropy
{
    /// <summary>logits [N, C], targets [N, C] (rows of class probabilities) -> the scalar mean loss.</summary>
    public static Tensor Loss(Tensor logits, Tensor targets)
    {
        using var scope = NewDisposeScope();
        var loss = (-targets * nn.functional.log_softmax(logits, -1)).sum(-1).mean();
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>Smoothed one-hot targets [N, C]: <c>1 - s + s/C</c> on the label, <c>s/C</c> elsewhere (timm <c>mixup_target</c>).</summary>
    public static Tensor OneHot(Tensor labels, int numClasses, double smoothing)
    {
        using var scope = NewDisposeScope();
        double off = smoothing / numClasses, on = 1.0 - smoothing + off;
        using var scale = (on - off).ToScalar();
        using var offset = off.ToScalar();
        var y = nn.functional.one_hot(labels, numClasses).to(ScalarType.Float32).mul_(scale).add_(offset, Model.Scalars.One);
        return y.MoveToOuterDisposeScope();
    }
}
