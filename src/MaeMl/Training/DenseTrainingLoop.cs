using System.Diagnostics;
using MaeMl.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Training;

/// <summary>
/// The epoch/step loop of the dense trainers: shuffled mini-batches of row indices, AdamW with weight decay on weights
/// only, the backbone at a reduced learning rate, per-step linear warmup + half-cycle cosine, a wall-clock limit, and one
/// log line per epoch. The caller computes the loss of a batch.
/// </summary>
public static class DenseTrainingLoop
{
    /// <param name="model">Model in training; its parameters are optimised.</param>
    /// <param name="isBackbone">Parameter name -> belongs to the ViT (gets <see cref="DenseTrainingOptions.BackboneLrScale"/>).</param>
    /// <param name="count">Training rows.</param>
    /// <param name="batchLoss">(row indices, random source) -> scalar loss of that batch.</param>
    /// <param name="o">The training settings.</param>
    /// <param name="log">Progress lines, or null.</param>
    /// <param name="cancellationToken">Checked before every step.</param>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public static DenseTrainingResult Run(nn.Module model, Func<string, bool> isBackbone, int count, Func<long[], Random, Tensor> batchLoss,
        DenseTrainingOptions o, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        torch.manual_seed(o.Seed);
        var rng = new Random(o.Seed);
        var groups = new List<TorchSharp.Modules.AdamW.ParamGroup>();
        var scales = new List<double>();
        foreach (bool backbone in new[] { true, false })
        {
            if (backbone && o.BackboneLrScale == 0)
            {
                foreach (var (name, p) in model.named_parameters()) if (isBackbone(name)) p.requires_grad = false;
                continue;
            }
            var named = model.named_parameters().Where(np => np.parameter.requires_grad && isBackbone(np.name) == backbone).ToList();
            static bool NoDecay(string name, Parameter p) => p.ndim <= 1 || name.EndsWith(".bias") || name.EndsWith("pos_embed") || name.EndsWith("cls_token");
            var noDecay = named.Where(np => NoDecay(np.name, np.parameter)).Select(np => np.parameter).ToList();
            var decay = named.Where(np => !NoDecay(np.name, np.parameter)).Select(np => np.parameter).ToList();
            double scale = backbone ? o.BackboneLrScale : 1;
            if (noDecay.Count > 0) { groups.Add(new(noDecay, o.Lr * scale, 0.9, 0.999, 1e-8, 0.0, false, false)); scales.Add(scale); }
            if (decay.Count > 0) { groups.Add(new(decay, o.Lr * scale, 0.9, 0.999, 1e-8, o.WeightDecay, false, false)); scales.Add(scale); }
        }
        using var optimizer = new Training.AdamW(groups, o.Lr);
        var schedule = new LearningRateSchedule(o.Lr, 0, o.WarmupEpochs, o.Epochs);
        int steps = Math.Max(1, count / o.BatchSize);   // drop the last partial batch
        var watch = Stopwatch.StartNew();
        long done = 0;
        double lastLoss = double.NaN;
        model.train();
        for (int epoch = 0; epoch < o.Epochs; epoch++)
        {
            var order = Enumerable.Range(0, count).OrderBy(_ => rng.Next()).ToArray();
            double sum = 0;
            for (int s = 0; s < steps; s++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                double lr = schedule.At(epoch + (double)s / steps);
                int k = 0;
                foreach (var g in optimizer.ParamGroups) g.LearningRate = lr * scales[k++];
                var rows = order.Skip(s * o.BatchSize).Take(Math.Min(o.BatchSize, count)).Select(i => (long)i).ToArray();
                var loss = batchLoss(rows, rng);
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
                double value = loss.item<float>();
                if (!double.IsFinite(value)) throw new InvalidOperationException($"The loss is {value} at epoch {epoch}, step {s}: lower the learning rate");
                sum += value;
                done++;
                if (o.TimeLimit is { } limit && watch.Elapsed > limit)
                {
                    log?.Invoke($"time limit {limit} reached at epoch {epoch}, step {s + 1}/{steps}");
                    return new DenseTrainingResult(epoch, done, sum / (s + 1), watch.Elapsed.TotalSeconds, true);
                }
            }
            lastLoss = sum / steps;
            log?.Invoke($"epoch {epoch + 1}/{o.Epochs}: loss {lastLoss:F4}, lr {schedule.At(epoch + 1):E2}, {watch.Elapsed.TotalSeconds:F0} s");
        }
        return new DenseTrainingResult(o.Epochs, done, lastLoss, watch.Elapsed.TotalSeconds, false);
    }
}
