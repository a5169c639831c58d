using MaeMl.Data;
using MaeMl.Model;
using MaeMl.Training;
using static TorchSharp.torch;

namespace MaeMl.Segmentation;

/// <summary>Fine-tunes a <see cref="SegmentationModel"/> (pixel cross-entropy with the ignore index) and evaluates it.</summary>
public static class SegmentationTrainer
{
    /// <summary>Trains on <paramref name="data"/> (random horizontal flips of image and mask together when enabled). With
    /// <see cref="DenseTrainingOptions.OutputDir"/> the run folder gets metrics.jsonl, loss-curve.png and checkpoint-last.maeml (a
    /// <see cref="SegmentationModelFile"/> with the optimizer state), and <see cref="DenseTrainingOptions.Resume"/> continues it exactly.
    /// With <paramref name="validation"/>, mIoU and pixel accuracy on it after every epoch (in the metrics and the log).</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (checked at every accumulation boundary, after which the run's checkpoint, if it has an output folder, is written).</exception>
    public static DenseTrainingResult Train(SegmentationModel model, SegmentationDataset data, DenseTrainingOptions options, Action<string>? log = null,
        CancellationToken cancellationToken = default, SegmentationDataset? validation = null, ConsoleProgress? progress = null,
        IReadOnlyList<string>? classNames = null)
    {
        var device = TrainingDevice.Resolve(options.Device);   // where DenseTraining.Run puts the model; batches follow it
        return DenseTraining.Run(model, SegmentationModelFile.Header(model, classNames ?? [], data.IgnoreIndex), model.Vit.NumLayers, data.Count, batch =>
        {
            var (images, labels) = Rows(data, batch.Rows, batch.Prepared);
            images = images.On(device); labels = labels.On(device);
            if (options.Flip && batch.Random.Next(2) == 1) { images = images.flip(3); labels = labels.flip(2); }
            if (options.MinScale < 1)
            {
                var (w, h) = data.ImageSize;
                var window = DenseAugment.Window(batch.Random, w, h, options.MinScale);
                images = DenseAugment.Zoom(images, window, w, h);
                labels = DenseAugment.Zoom(labels, window, w, h);
            }
            if (options.ColourJitter > 0) images = DenseAugment.Colour(images, batch.Random, options.ColourJitter);
            return SegmentationModel.Loss(model.forward(images), labels, data.IgnoreIndex);
        }, validation is null ? null : entry =>
        {
            var m = Evaluate(model, validation);
            entry["val_miou"] = m.MeanIoU; entry["val_pixel_acc"] = m.PixelAccuracy;
            return $", val mIoU {m.MeanIoU:P2} pixel acc {m.PixelAccuracy:P2}";
        }, options, log, progress, cancellationToken, data.IsStreamed ? rows => data.DecodeRows(rows) : null);
    }

    /// <summary>Images [n, 3, H, W] and labels [n, H, W] of <paramref name="rows"/>: from a streamed batch's decoded arrays, or indexed out of memory.</summary>
    static (Tensor Images, Tensor Labels) Rows(SegmentationDataset data, long[] rows, object? prepared)
    {
        var (w, h) = data.ImageSize;
        int n = rows.Length;
        if (prepared is ValueTuple<float[], long[]> decoded)
            return (tensor(decoded.Item1).reshape(n, 3, h, w), tensor(decoded.Item2).reshape(n, h, w));
        if (data.IsStreamed) return Rows(data, rows, data.DecodeRows(rows));
        using var index = tensor(rows);
        return (data.Images.index_select(0, index), data.Labels.index_select(0, index));
    }

    /// <summary>Class ids [N, H, W] (int64) of images [N, 3, H, W].</summary>
    public static Tensor Predict(SegmentationModel model, Tensor images, int batchSize = 16)
    {
        model.eval();
        using var _ = no_grad();
        var device = TrainingDevice.Of(model);
        var parts = new List<Tensor>();
        for (long i = 0; i < images.shape[0]; i += batchSize)
        {
            using var scope = NewDisposeScope();
            parts.Add(model.forward(images[TensorIndex.Slice(i, i + batchSize)].On(device)).argmax(1).cpu().MoveToOuterDisposeScope());
        }
        var result = cat(parts, 0);
        foreach (var p in parts) p.Dispose();
        return result;
    }

    /// <summary>
    /// mIoU, per-class IoU and pixel accuracy against each mask at its file's own resolution (mmseg's evaluation): the logits at the
    /// model's input size (<see cref="SegmentationModel.forward"/>) are bilinearly resized (align_corners=False) to the mask's size before the arg-max. <see cref="Evaluate"/> scores at the
    /// model size instead, against masks resized nearest-neighbour; the two agree when the model's input is the data's size.
    /// </summary>
    /// <exception cref="InvalidOperationException">The set has no mask files (<see cref="SegmentationDataset.MaskPaths"/> is null).</exception>
    public static SegmentationMetrics EvaluateAtMaskSize(SegmentationModel model, SegmentationDataset data, int batchSize = 16)
    {
        if (data.MaskPaths is null) throw new InvalidOperationException("Evaluation at the masks' own size needs a set read from mask files");
        model.eval();
        using var _ = no_grad();
        var device = TrainingDevice.Of(model);
        var metrics = new SegmentationMetrics(data.NumClasses, data.IgnoreIndex);
        var batches = new RowBatches(data.Count, batchSize, seed: 0, shuffle: false, prepare: data.IsStreamed ? rows => data.DecodeRows(rows) : null, dropLast: false);
        foreach (var batch in batches.Epoch(0))
        {
            using var scope = NewDisposeScope();
            var (images, _) = Rows(data, batch.Rows, batch.Prepared);
            var logits = model.forward(images.On(device));                                              // [n, K, H, W] at the model size
            for (int k = 0; k < batch.Rows.Length; k++)
            {
                var labels = data.MaskAtOwnSize((int)batch.Rows[k]);                                     // [1, H0, W0]
                var resized = nn.functional.interpolate(logits[k..(k + 1)], new[] { labels.shape[1], labels.shape[2] },
                    mode: InterpolationMode.Bilinear, align_corners: false);
                metrics.Add(resized.argmax(1).cpu(), labels);
            }
        }
        return metrics;
    }

    /// <summary>mIoU, per-class IoU and pixel accuracy on <paramref name="data"/> (a streamed set is decoded batch by batch, ahead on a background thread).</summary>
    public static SegmentationMetrics Evaluate(SegmentationModel model, SegmentationDataset data, int batchSize = 16)
    {
        var metrics = new SegmentationMetrics(data.NumClasses, data.IgnoreIndex);
        if (!data.IsStreamed)
        {
            using var predicted = Predict(model, data.Images, batchSize);
            metrics.Add(predicted, data.Labels);
            return metrics;
        }
        var batches = new RowBatches(data.Count, batchSize, seed: 0, shuffle: false, prepare: rows => data.DecodeRows(rows), dropLast: false);
        foreach (var batch in batches.Epoch(0))
        {
            using var scope = NewDisposeScope();
            var (images, labels) = Rows(data, batch.Rows, batch.Prepared);
            using var predicted = Predict(model, images, batchSize);
            metrics.Add(predicted, labels);
        }
        return metrics;
    }
}
