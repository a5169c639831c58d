using MaeMl.Training;
using MaeMl.Pretrained;
using MaeMl.Segmentation;

/// <summary>Semantic segmentation on the MAE encoder: image + mask PNG folders (pixel = class id), a pyramid head,
/// mIoU / pixel accuracy, and an ONNX export that ML.NET runs with <c>mlContext.Transforms.SegmentImages</c>.</summary>
static class SegmentImages
{
    public static int Run(string[] args)
    {
        if (args.Length < 3) { Console.Error.WriteLine("usage: segment IMAGE_FOLDER MASK_FOLDER CLASSES [IGNORE_VALUE=255]"); return 2; }
        int classes = int.Parse(args[2]), ignore = args.Length > 3 ? int.Parse(args[3]) : 255;
        const int size = 64;
        using var mae = MaePretrained.Load("cifar10-vit-tiny");                 // 32x32 MAE; its position table is interpolated to 64x64
        var config = new SegmentationConfig(mae.Config with { ImageSize = size }, classes, SegmentationHeadKind.Pyramid);
        using var model = new SegmentationModel(config);
        var encoder = mae.state_dict().Where(kv => MaeMl.Model.MaskedAutoencoderViT.IsEncoderKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value);
        model.Vit.LoadEncoder(encoder);
        using var data = SegmentationDataset.Load(args[0], args[1], size, classes, ignore);
        var result = SegmentationTrainer.Train(model, data, new DenseTrainingOptions { Epochs = 10, TimeLimit = TimeSpan.FromMinutes(3) }, Console.WriteLine);
        var metrics = SegmentationTrainer.Evaluate(model, data);
        Console.WriteLine($"{result.Steps} steps; training-set mIoU {metrics.MeanIoU:P2}, pixel accuracy {metrics.PixelAccuracy:P2}");
        SegmentationOnnxExporter.Export(model, "segmenter.onnx", includeProbabilities: true);
        Console.WriteLine("wrote segmenter.onnx: use mlContext.Transforms.SegmentImages(\"Mask\", \"Image\", \"segmenter.onnx\", 64, \"Probabilities\")");
        return 0;
    }
}
