using MaeMl.Data;
using MaeMl.Model;
using MaeMl.Training;
using static TorchSharp.torch;

namespace MaeMl.Detection;

/// <summary>Fine-tunes a <see cref="DetectionModel"/> with the FCOS loss and evaluates it with COCO-style AP.</summary>
public static class DetectionTrainer
{
    /// <summary>Trains on <paramref name="data"/>; random horizontal flips move the boxes with the images. With
    /// <see cref="DenseTrainingOptions.OutputDir"/> the run folder gets metrics.jsonl, loss-curve.png and checkpoint-last.maeml (a
    /// <see cref="DetectionModelFile"/> with the optimizer state), and <see cref="DenseTrainingOptions.Resume"/> continues it exactly.
    /// With <paramref name="validation"/>, COCO-style AP on it after every epoch (in the metrics and the log).</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (checked at every accumulation boundary, after which the run's checkpoint, if it has an output folder, is written).</exception>
    public static DenseTrainingResult Train(DetectionModel model, DetectionDataset data, DenseTrainingOptions options, Action<string>? log = null,
        CancellationToken cancellationToken = default, DetectionDataset? validation = null, ConsoleProgress? progress = null)
    {
        var device = TrainingDevice.Resolve(options.Device);   // where DenseTraining.Run puts the model; batches follow it
        return DenseTraining.Run(model, DetectionModelFile.Header(model, data.ClassNames), model.Vit.NumLayers, data.Count, batch =>
        {
            var images = Rows(data, batch.Rows, batch.Prepared).On(device);
            BoxAnnotation[][] boxes = batch.Rows.Select(r => data.Boxes[(int)r]).ToArray();
            if (options.Flip && batch.Random.Next(2) == 1) (images, boxes) = DetectionDataset.FlipHorizontal(images, boxes);
            if (options.MinScale < 1)
            {
                int s = data.ImageSize;
                var w = DenseAugment.Window(batch.Random, s, options.MinScale);
                images = DenseAugment.Zoom(images, w, s);
                float k = (float)s / w.Side;
                boxes = boxes.Select(bs => bs.Select(b => b.Transform(k, k, -w.X0 * k, -w.Y0 * k))
                    .Select(b => b with { X0 = Math.Clamp(b.X0, 0, s), Y0 = Math.Clamp(b.Y0, 0, s), X1 = Math.Clamp(b.X1, 0, s), Y1 = Math.Clamp(b.Y1, 0, s) })
                    .Where(b => b.Width >= 1 && b.Height >= 1).ToArray()).ToArray();
            }
            if (options.ColourJitter > 0) images = DenseAugment.Colour(images, batch.Random, options.ColourJitter);
            using var output = model.forward(images);
            return FcosLoss.Compute(model, output, boxes);
        }, validation is null ? null : entry =>
        {
            var e = Evaluate(model, validation);
            entry["val_map"] = e.MAP; entry["val_ap50"] = e.AP50;
            return $", val mAP {e.MAP:F4} AP50 {e.AP50:F4}";
        }, options, log, progress, cancellationToken, data.IsStreamed ? rows => data.DecodeRows(rows) : null);
    }

    /// <summary>Images [n, 3, S, S] of <paramref name="rows"/>: from a streamed batch's decoded pixels, decoded now, or indexed out of memory.</summary>
    static Tensor Rows(DetectionDataset data, long[] rows, object? prepared)
    {
        int s = data.ImageSize;
        if (prepared is float[] pixels) return tensor(pixels).reshape(rows.Length, 3, s, s);
        if (data.IsStreamed) return tensor(data.DecodeRows(rows)).reshape(rows.Length, 3, s, s);
        using var index = tensor(rows);
        return data.Images.index_select(0, index);
    }

    /// <summary>Detections per image of images [N, 3, S, S], in model pixels.</summary>
    public static List<DetectedBox[]> Predict(DetectionModel model, Tensor images, int batchSize = 16)
    {
        model.eval();
        using var _ = no_grad();
        var device = TrainingDevice.Of(model);
        var result = new List<DetectedBox[]>();
        for (long i = 0; i < images.shape[0]; i += batchSize)
        {
            using var scope = NewDisposeScope();
            using var output = model.forward(images[TensorIndex.Slice(i, i + batchSize)].On(device));
            result.AddRange(FcosPostprocess.Decode(model, output));
        }
        return result;
    }

    /// <summary>Detections of every image of <paramref name="data"/> in row order, in model pixels (a streamed set is decoded a batch
    /// ahead on a background thread, never held whole).</summary>
    public static List<DetectedBox[]> Predict(DetectionModel model, DetectionDataset data, int batchSize = 16)
    {
        if (!data.IsStreamed) return Predict(model, data.Images, batchSize);
        var detections = new List<DetectedBox[]>();
        var batches = new RowBatches(data.Count, batchSize, seed: 0, shuffle: false, prepare: rows => data.DecodeRows(rows), dropLast: false);
        foreach (var batch in batches.Epoch(0))
        {
            using var images = Rows(data, batch.Rows, batch.Prepared);
            detections.AddRange(Predict(model, images, batchSize));
        }
        return detections;
    }

    /// <summary>COCO-style AP of the model on <paramref name="data"/>: of the detections <see cref="FcosPostprocess"/> (and so the
    /// exported ONNX model) returns, at most <see cref="DetectionConfig.MaxDetections"/> an image.</summary>
    public static DetectionEvaluation Evaluate(DetectionModel model, DetectionDataset data, int batchSize = 16) =>
        Evaluate(model, data, Predict(model, data, batchSize));

    /// <summary>The same AP from detections already made by <see cref="Predict(DetectionModel, DetectionDataset, int)"/> on <paramref name="data"/>.</summary>
    public static DetectionEvaluation Evaluate(DetectionModel model, DetectionDataset data, IReadOnlyList<DetectedBox[]> predicted) =>
        DetectionMetrics.Evaluate(predicted, data.Boxes, model.Config.NumClasses, model.Config.MaxDetections);
}
