using MaeMl.Onnx;
using Microsoft.ML.Transforms.Image;

namespace MaeMl.MLNet;

/// <summary>Settings of <see cref="MaeEncoderCatalog.ApplyMaeEncoder(Microsoft.ML.TransformsCatalog, MaeEncoderOptions)"/>.</summary>
public sealed class MaeEncoderOptions
{
    /// <summary>Column to create: the embedding, a known-size vector of <see cref="float"/>. Default <c>Features</c>, what ML.NET trainers read.</summary>
    public string OutputColumnName { get; set; } = "Features";

    /// <summary>Input column: an image (<see cref="Microsoft.ML.Data.MLImage"/>, from <c>LoadImages</c> or in memory), or a known-size
    /// vector of <see cref="float"/> holding C*S*S values: RGB planes, 0..255, already at the model's size. Default <c>Image</c>.</summary>
    public string InputColumnName { get; set; } = "Image";

    /// <summary>Encoder ONNX file written by <see cref="VitEncoderOnnxExporter"/> or <c>maeml export-onnx</c>. Required.</summary>
    public string ModelFile { get; set; } = "";

    /// <summary>Which embedding to output; the model file must have been exported with it. Default <see cref="EncoderPooling.Cls"/>.</summary>
    public EncoderPooling Pooling { get; set; } = EncoderPooling.Cls;

    /// <summary>Side of the square the images are resized to. 0 (default) uses the model's input size; any other value must equal it
    /// (the position table fixes the size), so setting it documents and checks the expectation.</summary>
    public int ImageSize { get; set; }

    /// <summary>How images of another size are resized. Default <see cref="ImageResizingEstimator.ResizingKind.IsoCrop"/>: scale the
    /// shorter side to the size and cut the centre (see <see cref="CropAnchor"/>), as evaluation transforms do.</summary>
    public ImageResizingEstimator.ResizingKind ResizeMode { get; set; } = ImageResizingEstimator.ResizingKind.IsoCrop;

    /// <summary>Where <see cref="ImageResizingEstimator.ResizingKind.IsoCrop"/> cuts. Default centre.</summary>
    public ImageResizingEstimator.Anchor CropAnchor { get; set; } = ImageResizingEstimator.Anchor.Center;

    /// <summary>CUDA device to run on; null (default) runs on the CPU. Needs the CUDA and cuDNN versions of the ONNX Runtime GPU
    /// build (Microsoft.ML.OnnxRuntime.Gpu 1.31: CUDA 13, cuDNN 9).</summary>
    public int? GpuDeviceId { get; set; }

    /// <summary>Run on the CPU when <see cref="GpuDeviceId"/> is set but CUDA cannot be used. Default true.</summary>
    public bool FallbackToCpu { get; set; } = true;

    /// <summary>ONNX Runtime intra-op threads of the scoring session. Null (default): 1 for inputs of at most
    /// <see cref="MaeEncoderEstimator.SingleThreadMaxImageSize"/> px, else ONNX Runtime's choice (all cores). ML.NET scores one row at a
    /// time, and a small image's row is too little work to split across threads: on 2 cores, CIFAR-10's 32 px ViT-Tiny encoder
    /// ran 262 images/s with ONNX Runtime's default and 405 with 1 thread (batched ONNX Runtime: 381; <c>maeml bench-featurize</c>).</summary>
    public int? IntraOpThreads { get; set; }
}
