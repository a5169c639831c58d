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
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (checked after every step).</exception>
    public static DenseTrainingResult Train(DetectionModel model, DetectionDataset data, DenseTrainingOptions options, Action<string>? log = null,
        CancellationToken cancellationToken = default, DetectionDataset? validation = null, ConsoleProgress? progress = null) =>
        DenseTraining.Run(model, DetectionModelFile.Header(model, data.ClassNames), name => name.StartsWith("backbone.net."), data.Count, batch =>
        {
            using var index = tensor(batch.Rows);
            var images = data.Images.index_select(0, index).On(TrainingDevice.Of(model));
            BoxAnnotation[][] boxes = batch.Rows.Select(r => data.Boxes[(int)r]).ToArray();
            if (options.Flip && batch.Random.Next(2) == 1) (images, boxes) = DetectionDataset.FlipHorizontal(images, boxes);
            using var output = model.forward(images);
            return FcosLoss.Compute(model, output, boxes);
        }, validation is null ? null : entry =>
        {
            var e = Evaluate(model, validation);
            entry["val_map"] = e.MAP; entry["val_ap50"] = e.AP50;
            return $", val mAP {e.MAP:F4} AP50 {e.AP50:F4}";
        }, options, log, progress, cancellationToken);

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

    /// <summary>COCO-style AP of the model on <paramref name="data"/>: of the detections <see cref="FcosPostprocess"/> (and so the
    /// exported ONNX model) returns, at most <see cref="DetectionConfig.MaxDetections"/> an image.</summary>
    public static DetectionEvaluation Evaluate(DetectionModel model, DetectionDataset data, int batchSize = 16) =>
        DetectionMetrics.Evaluate(Predict(model, data.Images, batchSize), data.Boxes, model.Config.NumClasses, model.Config.MaxDetections);
}
