using MaeMl.Detection;
using MaeMl.Training;
using MaeMl.Pretrained;

/// <summary>Object detection on the MAE encoder: YOLO txt labels, ViTDet simple feature pyramid + FCOS head, COCO-style
/// AP, and an ONNX export with NonMaxSuppression that ML.NET runs with <c>ApplyOnnxModel</c>.</summary>
static class DetectObjects
{
    public static int Run(string[] args)
    {
        if (args.Length < 3) { Console.Error.WriteLine("usage: detect IMAGE_FOLDER YOLO_LABEL_FOLDER CLASS_NAMES(comma-separated)"); return 2; }
        var classes = args[2].Split(',');
        const int size = 64;
        using var mae = MaePretrained.Load("cifar10-vit-tiny");
        using var model = new DetectionModel(new DetectionConfig(mae.Config with { ImageSize = size }, classes.Length));
        var encoder = mae.state_dict().Where(kv => MaeMl.Model.MaskedAutoencoderViT.IsEncoderKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value);
        model.Vit.LoadEncoder(encoder);
        using var data = DetectionDataset.FromYolo(args[0], args[1], classes, size, DetectionResize.Letterbox);
        var result = DetectionTrainer.Train(model, data, new DenseTrainingOptions { Epochs = 10, TimeLimit = TimeSpan.FromMinutes(3) }, Console.WriteLine);
        var ap = DetectionTrainer.Evaluate(model, data);
        Console.WriteLine($"{result.Steps} steps; training-set mAP@[.5:.95] {ap.MAP:F3}, AP50 {ap.AP50:F3}");
        DetectionOnnxExporter.Export(model, "detector.onnx");
        Console.WriteLine("wrote detector.onnx (boxes, scores, labels after NonMaxSuppression)");
        return 0;
    }
}
