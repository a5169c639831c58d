using MaeMl.Model;
using MaeMl.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Evaluation;

/// <summary>Runs a classifier over every batch of a loader (no gradients, eval mode) and collects <see cref="ClassificationMetrics"/>.</summary>
public static class ClassifierEvaluation
{
    /// <summary>Top-1/top-5, cross-entropy loss, confusion matrix of <paramref name="model"/> on <paramref name="loader"/>'s epoch 0.
    /// The model is put back in training mode afterwards when it was in it.</summary>
    public static ClassificationMetrics Evaluate(nn.Module<Tensor, Tensor> model, PrefetchingBatchLoader loader, IReadOnlyList<string> classNames,
        CancellationToken cancel = default)
    {
        var metrics = new ClassificationMetrics(classNames);
        var device = TrainingDevice.Of(model);
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var _ = no_grad();
            foreach (var batch in loader.Epoch(0, 0, cancel))
            {
                using var scope = NewDisposeScope();
                var logits = model.forward(batch.ImagesTensor().On(device)).cpu();
                if (logits.shape[1] != classNames.Count)
                    throw new InvalidDataException($"The model predicts {logits.shape[1]} classes, the data has {classNames.Count}");
                var loss = nn.functional.cross_entropy(logits, batch.LabelsTensor()).item<float>();
                metrics.Add(logits.contiguous().data<float>().ToArray(), batch.Labels.AsSpan(0, batch.Count), loss);
            }
        }
        finally { if (wasTraining) model.train(); }
        return metrics;
    }
}
