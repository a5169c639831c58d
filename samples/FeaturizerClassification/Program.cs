// Train an ML.NET classifier on frozen MAE encoder features.
//
//   dotnet run --project samples/FeaturizerClassification -- [encoder.onnx] [train-folder test-folder]
//
// encoder.onnx comes from `maeml export-onnx --checkpoint my.maeml --out encoder.onnx`. Without arguments the sample
// exports a small randomly initialised encoder and generates a toy data set of coloured 32x32 images, so it runs anywhere.
// Folders hold one sub-folder of images per class (e.g. CIFAR-10's train/ and test/).
using MaeMl.MLNet;
using MaeMl.Model;
using MaeMl.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;

var work = Path.Combine(Path.GetTempPath(), "maeml-featurizer-sample");
Directory.CreateDirectory(work);
string encoder = args.Length > 0 ? args[0] : ExportRandomEncoder(Path.Combine(work, "encoder.onnx"));
string trainDir = args.Length > 2 ? args[1] : GenerateToyImages(Path.Combine(work, "train"), perClass: 40, seed: 1);
string testDir = args.Length > 2 ? args[2] : GenerateToyImages(Path.Combine(work, "test"), perClass: 15, seed: 2);

var ml = new MLContext(seed: 0);
var train = ml.Data.LoadFromEnumerable(ListImages(trainDir));
var test = ml.Data.LoadFromEnumerable(ListImages(testDir));

// LoadImages -> MAE encoder (resize, pixels, ONNX: built-in ML.NET estimators) -> linear classifier
var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
    .Append(ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: nameof(ImageFile.ImagePath)))
    .Append(ml.Transforms.ApplyMaeEncoder(new MaeEncoderOptions
    {
        InputColumnName = "Image",
        OutputColumnName = "Features",
        ModelFile = encoder,
        Pooling = EncoderPooling.Cls,
        GpuDeviceId = null,          // e.g. 0 to run on CUDA (ONNX Runtime GPU 1.31: CUDA 13 + cuDNN 9), with CPU fallback
    }))
    .Append(ml.Transforms.NormalizeMeanVariance("Features"))
    .AppendCacheCheckpoint(ml)       // featurize once, then the trainer makes its passes over the cache
    .Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy())
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));

var model = pipeline.Fit(train);
var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
Console.WriteLine($"encoder {encoder}");
Console.WriteLine($"test accuracy {metrics.MicroAccuracy:P1} (macro {metrics.MacroAccuracy:P1})");

// The fitted pipeline holds only ML.NET transformers (the ONNX model is stored inside): save, load, predict.
var zip = Path.Combine(work, "classifier.zip");
ml.Model.Save(model, train.Schema, zip);
var loaded = ml.Model.Load(zip, out _);
var engine = ml.Model.CreatePredictionEngine<ImageFile, Prediction>(loaded);
var first = ListImages(testDir).First();
Console.WriteLine($"{Path.GetFileName(first.ImagePath)}: true {first.Label}, predicted {engine.Predict(first).PredictedLabel}");

static string ExportRandomEncoder(string path)
{
    TorchSharp.torch.manual_seed(0);
    using var mae = new MaskedAutoencoderViT(MaePresets.Get("mae_vit_tiny_patch4_img32"));
    VitEncoderOnnxExporter.Export(mae, path, new VitEncoderOnnxOptions { Poolings = [EncoderPooling.Cls, EncoderPooling.Mean] });
    return path;
}

static string GenerateToyImages(string dir, int perClass, int seed)
{
    var rng = new Random(seed);
    var colours = new Dictionary<string, byte[]> { ["red"] = [210, 50, 40], ["green"] = [40, 190, 70], ["blue"] = [50, 70, 210] };
    foreach (var (name, rgb) in colours)
    {
        Directory.CreateDirectory(Path.Combine(dir, name));
        for (int i = 0; i < perClass; i++)
        {
            var rgba = new byte[32 * 32 * 4];
            for (int p = 0; p < 32 * 32; p++)
            {
                for (int c = 0; c < 3; c++) rgba[4 * p + c] = (byte)Math.Clamp(rgb[c] + rng.Next(-70, 71), 0, 255);
                rgba[4 * p + 3] = 255;
            }
            using var image = MLImage.CreateFromPixels(32, 32, MLPixelFormat.Rgba32, rgba);
            image.Save(Path.Combine(dir, name, $"{i:D4}.png"));
        }
    }
    return dir;
}

static IEnumerable<ImageFile> ListImages(string dir) =>
    Directory.GetDirectories(dir).OrderBy(d => d).SelectMany(d => Directory.GetFiles(d).OrderBy(f => f)
        .Select(f => new ImageFile { ImagePath = f, Label = Path.GetFileName(d) }));

public sealed class ImageFile
{
    public string ImagePath { get; set; } = "";
    public string Label { get; set; } = "";
}

public sealed class Prediction
{
    public string PredictedLabel { get; set; } = "";
}
